//! The JSON of Stripe objects. The text is the one source: lists send it;
//! retrieves, events and the truth parse it.
//!
//! Written as literal fragments (keys and punctuation) and values; ids are
//! the simulator's own letters and digits and are quoted, not escaped, where
//! they sit inside a longer string.

use serde_json::Value;

use crate::json::Text;
use crate::stripe_state::{
    Customer, Invoice, InvoiceStatus, Price, Product, StripeKind, StripeState, Subscription,
};

pub(crate) fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the simulator writes valid JSON")
}

impl StripeState {
    pub(crate) fn customer_text(&self, c: &Customer) -> String {
        let mut t = Text::new();
        t.l(r#"{"id":"#).s(&c.id)
            .l(r#","object":"customer","address":null,"balance":0,"created":"#).i(c.created)
            .l(r#","currency":"usd","default_source":null,"delinquent":"#).b(c.delinquent)
            .l(r#","description":null,"discount":null,"email":"#).s(&c.email)
            .l(r#","invoice_prefix":"#).s(&c.invoice_prefix)
            .l(r#","invoice_settings":{"custom_fields":null,"default_payment_method":null,"footer":null,"rendering_options":null},"livemode":false,"metadata":{"#);
        if let Some(u) = &c.clerk_user_id {
            t.l(r#""clerk_user_id":"#).s(u);
        }
        t.l(r#"},"name":"#).s(&c.name)
            .l(r#","next_invoice_sequence":2,"phone":null,"preferred_locales":[],"shipping":null,"tax_exempt":"none","test_clock":null}"#)
            .done()
    }

    pub(crate) fn product_text(&self, p: &Product) -> String {
        Text::new()
            .l(r#"{"id":"#).s(&p.id)
            .l(r#","object":"product","active":"#).b(p.active)
            .l(r#","created":"#).i(p.created)
            .l(r#","default_price":"#).os(p.default_price.as_deref())
            .l(r#","description":null,"images":[],"livemode":false,"marketing_features":[],"metadata":{},"name":"#).s(&p.name)
            .l(r#","package_dimensions":null,"shippable":null,"statement_descriptor":null,"tax_code":null,"type":"service","unit_label":null,"updated":"#).i(p.updated)
            .l(r#","url":null}"#)
            .done()
    }

    fn price_into(t: &mut Text, p: &Price) {
        t.l(r#"{"id":"#).s(&p.id)
            .l(r#","object":"price","active":"#).b(p.active)
            .l(r#","billing_scheme":"per_unit","created":"#).i(p.created)
            .l(r#","currency":"usd","custom_unit_amount":null,"livemode":false,"lookup_key":"#).os(p.lookup_key.as_deref())
            .l(r#","metadata":{},"nickname":"#).s(&p.nickname)
            .l(r#","product":"#).s(&p.product)
            .l(r#","recurring":{"interval":"month","interval_count":1,"meter":null,"trial_period_days":null,"usage_type":"licensed"},"tax_behavior":"unspecified","tiers_mode":null,"transform_quantity":null,"type":"recurring","unit_amount":"#).i(p.unit_amount)
            .l(r#","unit_amount_decimal":""#).i(p.unit_amount)
            .l(r#""}"#);
    }

    pub(crate) fn price_text(&self, p: &Price) -> String {
        let mut t = Text::new();
        Self::price_into(&mut t, p);
        t.done()
    }

    pub(crate) fn subscription_text(&self, s: &Subscription) -> String {
        let mut t = Text::new();
        t.l(r#"{"id":"#)
            .s(&s.id)
            .l(r#","object":"subscription","application":null,"billing_cycle_anchor":"#)
            .i(s.item.period_start)
            .l(r#","cancel_at":"#)
            .oi(s.cancel_at)
            .l(r#","cancel_at_period_end":"#)
            .b(s.cancel_at_period_end)
            .l(r#","canceled_at":"#)
            .oi(s.canceled_at)
            .l(r#","collection_method":"charge_automatically","created":"#)
            .i(s.created)
            .l(r#","currency":"usd","customer":"#)
            .s(&s.customer)
            .l(r#","default_payment_method":null,"description":null,"discounts":[],"ended_at":"#)
            .oi(s.ended_at)
            .l(r#","items":{"object":"list","data":[{"id":"#)
            .s(&s.item.id)
            .l(r#","object":"subscription_item","created":"#)
            .i(s.item.created)
            .l(r#","current_period_end":"#)
            .i(s.item.period_end)
            .l(r#","current_period_start":"#)
            .i(s.item.period_start)
            .l(r#","discounts":[],"metadata":{},"price":"#);
        match self.prices.get(&s.item.price) {
            Some(p) => Self::price_into(&mut t, p),
            None => {
                t.l(r#"{"id":"#).s(&s.item.price).l(r#","object":"price"}"#);
            }
        }
        t.l(r#","quantity":1,"subscription":"#).s(&s.id)
            .l(r#","tax_rates":[]}],"has_more":false,"total_count":1,"url":"/v1/subscription_items?subscription="#)
            .l(&s.id)
            .l(r#""},"latest_invoice":"#).os(s.latest_invoice.as_deref())
            .l(r#","livemode":false,"metadata":{},"pause_collection":null,"start_date":"#).i(s.created)
            .l(r#","status":""#).l(s.status.as_str())
            .l(r#"","test_clock":null,"trial_end":"#).oi(s.trial_end)
            .l(r#","trial_start":"#).oi(s.trial_start)
            .l("}")
            .done()
    }

    pub(crate) fn invoice_text(&self, i: &Invoice) -> String {
        let open = i.status == InvoiceStatus::Open;
        let product = self.prices.get(&i.price).map_or("", |p| p.product.as_str());
        Text::new()
            .l(r#"{"id":"#).s(&i.id)
            .l(r#","object":"invoice","account_country":"US","amount_due":"#).i(i.amount)
            .l(r#","amount_paid":"#).i(i.amount_paid)
            .l(r#","amount_remaining":"#).i(if open { i.amount - i.amount_paid } else { 0 })
            .l(r#","attempt_count":"#).i(i64::from(i.attempt_count))
            .l(r#","attempted":"#).b(i.attempt_count > 0)
            .l(r#","auto_advance":"#).b(open)
            .l(r#","billing_reason":"#).s(i.billing_reason)
            .l(r#","collection_method":"charge_automatically","created":"#).i(i.created)
            .l(r#","currency":"usd","customer":"#).s(&i.customer)
            .l(r#","customer_email":"#).s(&i.customer_email)
            .l(r#","description":null,"lines":{"object":"list","data":[{"id":"il_"#).l(&i.id[3..])
            .l(r#"","object":"line_item","amount":"#).i(i.amount)
            .l(r#","currency":"usd","invoice":"#).s(&i.id)
            .l(r#","period":{"end":"#).i(i.period_end)
            .l(r#","start":"#).i(i.period_start)
            .l(r#"},"pricing":{"type":"price_details","price_details":{"price":"#).s(&i.price)
            .l(r#","product":"#).s(product)
            .l(r#"}},"quantity":1}],"has_more":false,"total_count":1,"url":"/v1/invoices/"#).l(&i.id)
            .l(r#"/lines"},"livemode":false,"metadata":{},"number":"#).s(&i.number)
            .l(r#","parent":{"type":"subscription_details","quote_details":null,"subscription_details":{"metadata":{},"subscription":"#).s(&i.subscription)
            .l(r#"}},"period_end":"#).i(i.period_end)
            .l(r#","period_start":"#).i(i.period_start)
            .l(r#","status":""#).l(i.status.as_str())
            .l(r#"","status_transitions":{"finalized_at":"#).oi(i.finalized_at)
            .l(r#","marked_uncollectible_at":"#).oi(i.uncollectible_at)
            .l(r#","paid_at":"#).oi(i.paid_at)
            .l(r#","voided_at":"#).oi(i.voided_at)
            .l(r#"},"subtotal":"#).i(i.amount)
            .l(r#","total":"#).i(i.amount)
            .l("}")
            .done()
    }

    pub(crate) fn customer_json(&self, c: &Customer) -> Value {
        parse(&self.customer_text(c))
    }

    pub(crate) fn product_json(&self, p: &Product) -> Value {
        parse(&self.product_text(p))
    }

    pub(crate) fn price_json(&self, p: &Price) -> Value {
        parse(&self.price_text(p))
    }

    pub(crate) fn subscription_json(&self, s: &Subscription) -> Value {
        parse(&self.subscription_text(s))
    }

    pub(crate) fn invoice_json(&self, i: &Invoice) -> Value {
        parse(&self.invoice_text(i))
    }

    /// The JSON text of a live (listed) object, `None` if deleted or unknown.
    pub(crate) fn live_string(&self, kind: StripeKind, id: &str) -> Option<String> {
        match kind {
            StripeKind::Customers => self
                .customers
                .get(id)
                .filter(|c| !c.deleted)
                .map(|c| self.customer_text(c)),
            StripeKind::Products => self
                .products
                .get(id)
                .filter(|p| !p.deleted)
                .map(|p| self.product_text(p)),
            StripeKind::Prices => self
                .prices
                .get(id)
                .filter(|p| !p.deleted)
                .map(|p| self.price_text(p)),
            StripeKind::Subscriptions => self
                .subscriptions
                .get(id)
                .map(|s| self.subscription_text(s)),
            StripeKind::Invoices => self.invoices.get(id).map(|i| self.invoice_text(i)),
        }
    }
}
