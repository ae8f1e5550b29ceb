//! The JSON text of a Clerk user (user lists are the large ones).

use crate::clerk_state::User;
use crate::json::Text;

/// A user as `GET /v1/users/{id}` shows it.
pub(crate) fn user_text(u: &User) -> String {
    let mut t = Text::new();
    t.l(r#"{"id":"#).s(&u.id)
        .l(r#","object":"user","external_id":null,"username":null,"first_name":"#).s(&u.first_name)
        .l(r#","last_name":"#).s(&u.last_name)
        .l(r#","image_url":"https://img.clerk.com/placeholder","has_image":false,"primary_email_address_id":"#).s(&u.primary_email)
        .l(r#","primary_phone_number_id":null,"primary_web3_wallet_id":null,"password_enabled":true,"two_factor_enabled":false,"totp_enabled":false,"backup_code_enabled":false,"email_addresses":["#);
    for (n, e) in u.emails.iter().enumerate() {
        t.l(if n == 0 { r#"{"id":"# } else { r#",{"id":"# }).s(&e.id)
            .l(r#","object":"email_address","email_address":"#).s(&e.address)
            .l(r#","reserved":false,"linked_to":[],"verification":{"status":"verified","strategy":"email_code","attempts":1,"expire_at":null},"created_at":"#).i(e.created_at)
            .l(r#","updated_at":"#).i(e.updated_at)
            .l("}");
    }
    t.l(r#"],"phone_numbers":[],"web3_wallets":[],"passkeys":[],"external_accounts":[],"saml_accounts":[],"public_metadata":{"#);
    if let Some(c) = &u.stripe_customer_id {
        t.l(r#""stripe_customer_id":"#).s(c);
    }
    t.l(r#"},"private_metadata":{},"unsafe_metadata":{},"banned":false,"locked":false,"lockout_expires_in_seconds":null,"verification_attempts_remaining":100,"delete_self_enabled":true,"create_organization_enabled":true,"legal_accepted_at":null,"last_sign_in_at":"#)
        .oi(u.last_sign_in_at)
        // Clerk reports activity with day precision.
        .l(r#","last_active_at":"#).oi(u.last_sign_in_at.map(|t| t - t.rem_euclid(86_400_000)))
        .l(r#","created_at":"#).i(u.created_at)
        .l(r#","updated_at":"#).i(u.updated_at)
        .l("}")
        .done()
}
