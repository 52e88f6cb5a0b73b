//! Customer emails over SMTP (`procure_domain::ports::EmailSender`), through `lettre`'s tokio
//! transport: one connection per message (no pool: messages are few and a connection kept open
//! to a relay goes stale), plain text, the sender from `email.from`, a `Message-ID` stable per
//! event. TLS as configured: none (a loopback relay), STARTTLS (required, port 587 by default)
//! or implicit TLS (port 465), through rustls with the platform's verifier, as reqwest has it.
//!
//! The recipient is personal data: it is never logged, and an error never carries it (a
//! server's answer that repeats it has it replaced by `<recipient>`).

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{authentication::Credentials, extension::ClientId},
};
use procure_domain::{
    Secret,
    ports::{EmailSender, OutgoingEmail, PortError, PortFuture},
};
use std::time::Duration;

use crate::http::BuildError;

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP: a relay on loopback or the pod's own network only.
    None,
    /// STARTTLS, required (the connection fails if the server does not offer it).
    StartTls,
    /// Implicit TLS from the first byte (SMTPS).
    Tls,
}

/// Where and how to send.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// `smtp://host[:port]` (`smtps://` is the same with implicit TLS).
    pub url: String,
    /// The sender, `procure@shop.example` or `Shop <procure@shop.example>`.
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: SmtpTls,
    /// Connecting and each command's answer.
    pub timeout: Duration,
}

/// Sends customer emails; see the module docs.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where to, without credentials, for logs: `host:port`.
    relay: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

fn build_error(reason: impl std::fmt::Display) -> BuildError {
    BuildError {
        service: "email",
        reason: reason.to_string(),
    }
}

impl SmtpMailer {
    pub fn new(c: &SmtpConfig) -> Result<Self, BuildError> {
        let url = url::Url::parse(&c.url)
            .map_err(|e| build_error(format!("email.smtp_url is not a URL: {e}")))?;
        let tls = match url.scheme() {
            "smtp" => c.tls,
            "smtps" => SmtpTls::Tls,
            other => {
                return Err(build_error(format!(
                    "email.smtp_url must be smtp:// or smtps://, not {other}://"
                )));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(build_error(
                "email.smtp_url may not carry credentials: set email.smtp_username and email.smtp_password",
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| build_error("email.smtp_url must name a host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| build_error(format!("email.from is not an address: {e}")))?;
        let mut b = match tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| build_error(format!("email TLS: {e}")))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| build_error(format!("email TLS: {e}")))?,
        };
        let port = url.port().unwrap_or(match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        });
        b = b
            .port(port)
            .timeout(Some(c.timeout))
            .hello_name(ClientId::Domain(from.email.domain().to_owned()));
        if let Some(user) = &c.username {
            let password = c
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            b = b.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpMailer {
            transport: b.build(),
            from,
            relay: format!("{host}:{port}"),
        })
    }

    /// `host:port` of the relay.
    pub fn relay(&self) -> &str {
        &self.relay
    }
}

/// `message` with every occurrence of `recipient` replaced (servers repeat it in rejections).
fn without(message: String, recipient: &str) -> String {
    if recipient.is_empty() {
        return message;
    }
    let lower = message.to_ascii_lowercase();
    let needle = recipient.to_ascii_lowercase();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while let Some(at) = lower[i..].find(&needle) {
        out.push_str(&message[i..i + at]);
        out.push_str("<recipient>");
        i += at + needle.len();
    }
    out.push_str(&message[i..]);
    out
}

/// Whether a failed send may pass later. A 5xx answer is permanent for this message (RFC 5321
/// §4.2.1), except the 53x family, which is about our session rather than the message
/// (530 authentication required, 534/535 credentials refused, 538 encryption required, RFC
/// 4954 §6): an operator fixes the relay's credentials and the same message goes through.
fn retryable(e: &lettre::transport::smtp::Error) -> bool {
    use lettre::transport::smtp::response::Category;
    match e.status() {
        Some(code) if e.is_permanent() => code.category == Category::Unspecified3,
        _ => !e.is_permanent(),
    }
}

impl EmailSender for SmtpMailer {
    fn send<'a>(&'a self, email: OutgoingEmail<'a>) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let to: Mailbox = email
                .to
                .parse()
                .map_err(|_| PortError::new("the recipient is not a valid address", false))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(email.subject)
                .message_id(Some(email.message_id.to_owned()))
                .header(ContentType::TEXT_PLAIN)
                .body(email.text.to_owned())
                .map_err(|e| PortError::new(format!("building the message: {e}"), false))?;
            match tokio::time::timeout(email.timeout, self.transport.send(message)).await {
                Err(_) => Err(PortError::new(
                    format!("no answer from {} within {:?}", self.relay, email.timeout),
                    true,
                )),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    let text = without(format!("{}: {e}", self.relay), email.to);
                    Err(PortError::new(text, retryable(&e)))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            from: "Shop <procure@shop.example>".into(),
            username: None,
            password: None,
            tls: SmtpTls::None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_url_names_host_port_and_no_credentials() {
        assert_eq!(
            SmtpMailer::new(&config("smtp://127.0.0.1:2525"))
                .unwrap()
                .relay(),
            "127.0.0.1:2525"
        );
        assert_eq!(
            SmtpMailer::new(&config("smtp://relay.example"))
                .unwrap()
                .relay(),
            "relay.example:25"
        );
        assert_eq!(
            SmtpMailer::new(&config("smtps://relay.example"))
                .unwrap()
                .relay(),
            "relay.example:465"
        );
        for bad in [
            "http://relay.example",
            "smtp://u:p@relay.example",
            "not a url",
        ] {
            assert!(SmtpMailer::new(&config(bad)).is_err(), "{bad}");
        }
        let mut c = config("smtp://relay.example");
        c.from = "not an address".into();
        assert!(SmtpMailer::new(&c).is_err());
    }

    #[test]
    fn the_recipient_is_taken_out_of_errors() {
        assert_eq!(
            without(
                "550 5.1.1 <Ana@Shop.example>: rejected; ana@shop.example again".into(),
                "ana@shop.example"
            ),
            "550 5.1.1 <<recipient>>: rejected; <recipient> again"
        );
    }
}
