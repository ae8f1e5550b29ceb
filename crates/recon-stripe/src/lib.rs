//! recon-stripe (in progress)
