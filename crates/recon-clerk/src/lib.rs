//! recon-clerk (in progress)
