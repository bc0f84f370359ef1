//! What a flow leaves to do after its answer: one [`Effect`] per message, count or audit row,
//! queued on the [`Ctx`] and carried out by [`run`].

use serde_json::Value;

use super::{Ctx, Sent};
use crate::events::Event;
use crate::notify::{EmailMessage, SmsMessage};

/// Something a flow does once it has answered.
#[derive(Debug)]
pub(crate) enum Effect {
    /// A mail, sent only when the flow succeeded (so a rolled-back code is never mailed).
    Mail(EmailMessage),
    /// A text message, sent like a mail.
    Sms(SmsMessage),
    /// A code message sent inside a transaction, counted toward the hourly caps after it (a
    /// second write inside an open SQLite transaction would wait on itself); only when the
    /// flow succeeded.
    CountSent(Sent),
    /// An audit row outside any transaction (a refusal whose change rolled back, or a change
    /// without a transaction); written whatever the flow answered.
    Audit {
        /// The user concerned.
        user: Option<String>,
        /// The event.
        event: Event,
        /// Whether it went well.
        success: bool,
        /// Details (JSON).
        details: Value,
    },
}

/// Carries out the queued effects: audit rows always, counts and then messages only when
/// the flow `succeeded`. Messages go out on their own tasks, off the request path: a slow or
/// failing relay never changes the answer or its timing.
pub(crate) async fn run(ctx: &Ctx<'_>, succeeded: bool) {
    let effects = ctx
        .effects
        .lock()
        .map(|mut e| std::mem::take(&mut *e))
        .unwrap_or_default();
    let mut counted = Vec::new();
    let mut messages = Vec::new();
    for effect in effects {
        match effect {
            Effect::Audit {
                user,
                event,
                success,
                details,
            } => {
                crate::events::audit(
                    ctx.inner,
                    user.as_deref(),
                    event,
                    success,
                    &ctx.origin,
                    details,
                )
                .await;
            }
            Effect::CountSent(sent) if succeeded => counted.push(sent),
            Effect::Mail(_) | Effect::Sms(_) if succeeded => messages.push(effect),
            Effect::CountSent(_) | Effect::Mail(_) | Effect::Sms(_) => {}
        }
    }
    super::budget::count_sent(ctx, &counted).await;
    for message in messages {
        let (email, sms) = (ctx.inner.email.clone(), ctx.inner.sms.clone());
        tokio::spawn(async move {
            match message {
                Effect::Mail(mail) => {
                    if let Err(e) = email.send(&mail).await {
                        tracing::warn!(error = %e, subject = %mail.subject, "mail delivery failed");
                    }
                }
                Effect::Sms(text) => {
                    if let Err(e) = sms.send(&text).await {
                        tracing::warn!(error = %e, "SMS delivery failed");
                    }
                }
                Effect::CountSent(_) | Effect::Audit { .. } => {}
            }
        });
    }
}
