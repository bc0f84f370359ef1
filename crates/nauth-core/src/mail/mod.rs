//! The words of every mail (docs/mails.md): minijinja templates, text and HTML, one set per
//! shipped language, embedded in the crate and replaceable file by file from
//! `email.templates_dir`. Also the language a mail is written in: a user's stored `locale`, the
//! request's `Accept-Language`, then `email.default_locale`.
//!
//! Everything here is checked at startup ([`Templates::load`], called by the configuration's
//! validation): a template that does not compile, does not render, or drops the code or link
//! of its mail stops the start instead of failing a send.

use std::path::Path;
use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior, context};

use crate::config::{ConfigError, EmailConfig, Locale};

/// Every shipped language, in the order they are tried.
pub(crate) const LOCALES: [Locale; 2] = [Locale::En, Locale::Fr];

/// What a text message is for. SMS texts are short, fixed sentences in each shipped
/// language (no template files: a text message has no room for layout), with the code first so
/// that phones offer to copy it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sms {
    /// The code of an MFA_REQUIRED challenge (someone is signing in).
    SignIn,
    /// The code that proves a phone number (VERIFY_PHONE, SMS factor enrolment).
    Verify,
    /// A password reset code.
    Reset,
}

/// Which mail. Each has a text template `{locale}/{name}.txt` (whose `subject` block is the
/// subject line) and an HTML template `{locale}/{name}.html`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The signup verification code, and link when `base_url` is set.
    VerifyEmail,
    /// `POST /resend-verification`: the verification link alone.
    VerifyEmailLink,
    /// A signup with an address that already has an account: a notice to its owner.
    DuplicateSignup,
    /// `POST /forgot-password`: the reset code, and link when there is a reset page.
    ResetPassword,
    /// `POST /change-email`: the code, to the new address.
    ChangeEmailCode,
    /// `POST /change-email` naming another account's address: a notice to that owner.
    ChangeEmailTaken,
    /// `POST /change-email/confirm`: a notice to the old address.
    EmailChanged,
    /// An admin changed the address: a notice to the old one.
    EmailChangedByAdmin,
    /// An MFA code (sign-in challenge or enrolment of the email factor).
    MfaCode,
    /// A second factor was added.
    MfaFactorAdded,
    /// A second factor was removed.
    MfaFactorRemoved,
    /// `POST /magic-link`: the sign-in link.
    MagicLink,
}

impl Kind {
    /// Every mail, in the order of docs/mails.md.
    pub(crate) const ALL: [Kind; 12] = [
        Kind::VerifyEmail,
        Kind::VerifyEmailLink,
        Kind::DuplicateSignup,
        Kind::ResetPassword,
        Kind::ChangeEmailCode,
        Kind::ChangeEmailTaken,
        Kind::EmailChanged,
        Kind::EmailChangedByAdmin,
        Kind::MfaCode,
        Kind::MfaFactorAdded,
        Kind::MfaFactorRemoved,
        Kind::MagicLink,
    ];

    /// The template's name, without the language directory and the extension.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::VerifyEmail => "verify_email",
            Kind::VerifyEmailLink => "verify_email_link",
            Kind::DuplicateSignup => "duplicate_signup",
            Kind::ResetPassword => "reset_password",
            Kind::ChangeEmailCode => "change_email_code",
            Kind::ChangeEmailTaken => "change_email_taken",
            Kind::EmailChanged => "email_changed",
            Kind::EmailChangedByAdmin => "email_changed_by_admin",
            Kind::MfaCode => "mfa_code",
            Kind::MfaFactorAdded => "mfa_factor_added",
            Kind::MfaFactorRemoved => "mfa_factor_removed",
            Kind::MagicLink => "magic_link",
        }
    }

    /// Whether the mail carries a code (its text must show it).
    fn has_code(self) -> bool {
        matches!(
            self,
            Kind::VerifyEmail | Kind::ResetPassword | Kind::ChangeEmailCode | Kind::MfaCode
        )
    }

    /// Whether the mail may carry a link (its text must show it when there is one).
    fn has_link(self) -> bool {
        matches!(
            self,
            Kind::VerifyEmail | Kind::VerifyEmailLink | Kind::ResetPassword | Kind::MagicLink
        )
    }
}

/// What one mail says besides its fixed words. Every field is optional; a template sees each
/// as a variable (`none` when unset), see docs/mails.md.
#[derive(Clone, Default)]
pub(crate) struct Vars {
    /// The account's first name, as the user typed it (escaped in HTML).
    pub first_name: Option<String>,
    /// The 6-digit code.
    pub code: Option<String>,
    /// How long the code works.
    pub code_ttl: Option<Duration>,
    /// The link carrying a token.
    pub link: Option<String>,
    /// How long the link works.
    pub link_ttl: Option<Duration>,
    /// The new address of an email change, masked.
    pub new_email: Option<String>,
    /// The sign-in method a notice is about: `totp`, `email` or `sms` (a second factor),
    /// `passkey`, or `social` (a provider identity, named by `provider`).
    pub method: Option<&'static str>,
    /// The provider of a `social` notice, as its button names it.
    pub provider: Option<String>,
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The embedded templates: `(name, source)`, name as `{locale}/{file}`, for each file in each
/// language of [`LOCALES`] (a new language adds its line here).
macro_rules! embedded {
    ($($file:literal),+) => {
        &[$(
            (concat!("en/", $file), include_str!(concat!("templates/en/", $file))),
            (concat!("fr/", $file), include_str!(concat!("templates/fr/", $file))),
        )+]
    };
}

#[rustfmt::skip]
const EMBEDDED: &[(&str, &str)] = embedded!(
    "layout.txt", "layout.html",
    "verify_email.txt", "verify_email.html",
    "verify_email_link.txt", "verify_email_link.html",
    "duplicate_signup.txt", "duplicate_signup.html",
    "reset_password.txt", "reset_password.html",
    "change_email_code.txt", "change_email_code.html",
    "change_email_taken.txt", "change_email_taken.html",
    "email_changed.txt", "email_changed.html",
    "email_changed_by_admin.txt", "email_changed_by_admin.html",
    "mfa_code.txt", "mfa_code.html",
    "mfa_factor_added.txt", "mfa_factor_added.html",
    "mfa_factor_removed.txt", "mfa_factor_removed.html",
    "magic_link.txt", "magic_link.html"
);

/// The compiled templates of one engine, and the product name they show.
pub(crate) struct Templates {
    env: Environment<'static>,
    /// The embedded templates alone, when `templates_dir` replaced some: what a send falls back
    /// to if a replaced template fails at render time after all.
    fallback: Option<Environment<'static>>,
    product: String,
    default_locale: Locale,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("product", &self.product)
            .field("default_locale", &self.default_locale)
            .field("overridden", &self.fallback.is_some())
            .finish()
    }
}

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: "email.templates_dir".into(),
        message: message.into(),
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt variable is an error at the startup trial, not an empty spot in a mail.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // The default callback escapes templates named `*.html`: every HTML part, never a text one.
    env
}

/// A compile error of a template, said with its file and line (never a value: the trial
/// renders use sample values, and a send logs the template's name only).
fn describe(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(d) = e.detail() {
        s.push_str(": ");
        s.push_str(d);
    }
    if let Some(name) = e.name() {
        s.push_str(&format!(" (in {name}:{})", e.line().unwrap_or(0)));
    }
    s
}

impl Templates {
    /// Compiles the embedded templates, replaces those `cfg.templates_dir` holds, and renders
    /// every mail of every language once with sample values. Any problem is a
    /// [`ConfigError`] on `email.templates_dir` naming the file.
    pub(crate) fn load(cfg: &EmailConfig) -> Result<Templates, ConfigError> {
        let mut env = environment();
        for (name, source) in EMBEDDED {
            env.add_template(name, source)
                .map_err(|e| bad(describe(&e)))?;
        }
        let mut fallback = None;
        if !cfg.templates_dir.trim().is_empty() {
            fallback = Some(env.clone());
            for (name, source) in read_dir(Path::new(cfg.templates_dir.trim()))? {
                env.add_template_owned(name, source)
                    .map_err(|e| bad(describe(&e)))?;
            }
        }
        let templates = Templates {
            env,
            fallback,
            product: product_name(cfg),
            default_locale: cfg.default_locale,
        };
        templates.trial()?;
        Ok(templates)
    }

    /// The text of an SMS carrying `code`, in `locale`: the code, what it is for, the product
    /// name, how long it lives and a warning; then, when `host` is known, the origin-bound line
    /// `@host #code` (WebOTP: browsers offer the code to that site only).
    pub(crate) fn sms_text(
        &self,
        sms: Sms,
        locale: Locale,
        code: &str,
        ttl: Duration,
        host: Option<&str>,
    ) -> String {
        let p = &self.product;
        let life = duration_text(locale, ttl);
        let mut text = match (locale, sms) {
            (Locale::Fr, Sms::SignIn) => format!(
                "{code} est votre code de connexion {p}. Il expire dans {life}. \
                 Ne le donnez à personne : {p} ne vous le demandera jamais."
            ),
            (Locale::Fr, Sms::Verify) => format!(
                "{code} est votre code de vérification {p}. Il expire dans {life}. \
                 Ne le donnez à personne."
            ),
            (Locale::Fr, Sms::Reset) => format!(
                "{code} est votre code de réinitialisation du mot de passe {p}. Il expire \
                 dans {life}. Si vous ne l'avez pas demandé, ignorez ce message."
            ),
            (_, Sms::SignIn) => format!(
                "{code} is your {p} sign-in code. It expires in {life}. Never share it: \
                 {p} will never ask you for it."
            ),
            (_, Sms::Verify) => format!(
                "{code} is your {p} verification code. It expires in {life}. Never share it."
            ),
            (_, Sms::Reset) => format!(
                "{code} is your {p} password reset code. It expires in {life}. If you did not \
                 ask for it, ignore this message."
            ),
        };
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            text.push_str(&format!("\n\n@{host} #{code}"));
        }
        text
    }

    /// The language mails fall back to.
    pub(crate) fn default_locale(&self) -> Locale {
        self.default_locale
    }

    /// Renders `kind` in `locale` for the recipient `to`; on a failure of a replaced template,
    /// the embedded one. The error names the template only.
    pub(crate) fn render(
        &self,
        kind: Kind,
        locale: Locale,
        to: &str,
        vars: &Vars,
    ) -> Result<Rendered, String> {
        match render_in(&self.env, &self.product, kind, locale, to, vars) {
            Ok(r) => Ok(r),
            Err(e) => match &self.fallback {
                Some(builtin) => {
                    tracing::warn!(
                        template = kind.name(),
                        locale = locale.as_str(),
                        error = %e,
                        "a mail template of email.templates_dir failed; the embedded one is used"
                    );
                    render_in(builtin, &self.product, kind, locale, to, vars)
                }
                None => Err(e),
            },
        }
    }

    /// Renders every mail in every language with sample values, with and without the optional
    /// parts, and checks that each text part shows its code and link.
    fn trial(&self) -> Result<(), ConfigError> {
        let to = "jane.doe@example.com";
        for locale in LOCALES {
            for kind in Kind::ALL {
                for full in [true, false] {
                    let vars = sample_vars(kind, full);
                    let r = render_in(&self.env, &self.product, kind, locale, to, &vars)
                        .map_err(bad)?;
                    let file = format!("{}/{}.txt", locale.as_str(), kind.name());
                    if r.subject.is_empty() {
                        return Err(bad(format!("{file}: the `subject` block is empty")));
                    }
                    if let Some(code) = &vars.code
                        && r.text.matches(code.as_str()).count() != 1
                    {
                        return Err(bad(format!("{file}: the text must show `code` once")));
                    }
                    if let Some(link) = &vars.link
                        && r.text.matches(link.as_str()).count() != 1
                    {
                        return Err(bad(format!("{file}: the text must show `link` once")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sample values for the startup trial: everything a mail of `kind` may get (`full`), or only
/// what it always gets.
fn sample_vars(kind: Kind, full: bool) -> Vars {
    Vars {
        first_name: full.then(|| "Jane".to_owned()),
        code: kind.has_code().then(|| "135790".to_owned()),
        code_ttl: kind.has_code().then_some(Duration::from_secs(900)),
        link: (kind.has_link() && (full || kind == Kind::MagicLink))
            .then(|| "https://app.example/auth/x?token=SampleToken_1".to_owned()),
        link_ttl: kind.has_link().then_some(Duration::from_secs(3600)),
        new_email: matches!(kind, Kind::EmailChanged | Kind::EmailChangedByAdmin)
            .then(|| "n***w@example.com".to_owned()),
        method: matches!(kind, Kind::MfaFactorAdded | Kind::MfaFactorRemoved).then_some(if full {
            "totp"
        } else {
            "sms"
        }),
        provider: None,
    }
}

/// The product name every mail shows: `email.product_name`, else the display name of
/// `email.from`, else `nauth`.
fn product_name(cfg: &EmailConfig) -> String {
    let set = cfg.product_name.trim();
    if !set.is_empty() {
        return set.to_owned();
    }
    let from = cfg.from.trim();
    match from.rsplit_once('<') {
        Some((name, _)) => {
            let name = name.trim().trim_matches('"').trim();
            if name.is_empty() {
                "nauth".to_owned()
            } else {
                name.to_owned()
            }
        }
        None => "nauth".to_owned(),
    }
}

/// The template files of an override directory: `{locale}/{name}.txt|html` for a shipped
/// locale and a known name. A file with another name there, or another directory, is refused
/// (a typo would otherwise be silently ignored); other files (a README) are left alone.
fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let shown = dir.display();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| bad(format!("cannot read the directory {shown}: {e}")))?;
    let known: Vec<String> = EMBEDDED
        .iter()
        .filter_map(|(n, _)| n.split_once('/').map(|(_, f)| f.to_owned()))
        .collect();
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_dir() {
            if is_template_file(&name) {
                return Err(bad(format!(
                    "{name}: templates go in a language directory ({})",
                    locale_list()
                )));
            }
            continue;
        }
        let Some(locale) = LOCALES.into_iter().find(|l| l.as_str() == name) else {
            if name.starts_with('.') {
                continue;
            }
            return Err(bad(format!(
                "{name}/: not a shipped language; expected one of {}",
                locale_list()
            )));
        };
        let files = std::fs::read_dir(&path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        for file in files {
            let file = file.map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            let fname = file.file_name().to_string_lossy().into_owned();
            if !is_template_file(&fname) {
                continue;
            }
            if !known.contains(&fname) {
                return Err(bad(format!(
                    "{}/{fname}: unknown template (docs/mails.md lists the names)",
                    locale.as_str()
                )));
            }
            let source = std::fs::read_to_string(file.path())
                .map_err(|e| bad(format!("{}/{fname}: {e}", locale.as_str())))?;
            out.push((format!("{}/{fname}", locale.as_str()), source));
        }
    }
    Ok(out)
}

fn is_template_file(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".txt") || name.ends_with(".html"))
}

fn locale_list() -> String {
    LOCALES.map(Locale::as_str).join(", ")
}

/// Renders one mail with `env`.
fn render_in(
    env: &Environment<'static>,
    product: &str,
    kind: Kind,
    locale: Locale,
    to: &str,
    vars: &Vars,
) -> Result<Rendered, String> {
    let base = format!("{}/{}", locale.as_str(), kind.name());
    let fail = |e: minijinja::Error| describe(&e);
    let ctx = context! {
        product => product,
        locale => locale.as_str(),
        account => crate::input::mask_email(to),
        first_name => vars.first_name.clone().filter(|n| !n.trim().is_empty()),
        code => vars.code.clone(),
        code_expires_in => vars.code_ttl.map(|d| duration_text(locale, d)),
        link => vars.link.clone(),
        link_expires_in => vars.link_ttl.map(|d| duration_text(locale, d)),
        new_email => vars.new_email.clone(),
        method => vars.method,
        provider => vars.provider.clone(),
    };
    let text_tmpl = env.get_template(&format!("{base}.txt")).map_err(fail)?;
    let mut captured = text_tmpl.render_captured(ctx.clone()).map_err(fail)?;
    let subject = captured
        .with_state_mut(|s| s.render_block("subject"))
        .map_err(fail)?;
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = tidy_text(&captured.into_output());
    let html_ctx = context! { subject => subject.clone(), ..ctx };
    let html = env
        .get_template(&format!("{base}.html"))
        .and_then(|t| t.render(html_ctx))
        .map_err(fail)?;
    Ok(Rendered {
        subject,
        text,
        html: tidy_html(&html),
    })
}

/// A text part as mail clients like it: no trailing spaces, at most one empty line in a row,
/// no empty lines around it, one final newline.
fn tidy_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank = 0;
    for line in raw.replace("\r\n", "\n").lines() {
        // The signature separator keeps its trailing space ("-- ").
        let line = if line == "-- " { line } else { line.trim_end() };
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() && blank > 0 {
            out.push('\n');
        }
        blank = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// An HTML part without the empty lines the template tags leave.
fn tidy_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for line in raw
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
    {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A life span as a mail says it, rounded down to whole minutes, hours or days (never more
/// than the truth, and never a long number a reader could take for a code).
pub(crate) fn duration_text(locale: Locale, d: Duration) -> String {
    let minutes = (d.as_secs() / 60).max(1);
    let (n, unit) = if minutes < 120 && !minutes.is_multiple_of(60) {
        (minutes, 0)
    } else if minutes < 48 * 60 {
        (minutes / 60, 1)
    } else {
        (minutes / (24 * 60), 2)
    };
    let words: [(&str, &str); 3] = match locale {
        Locale::Fr => [
            ("minute", "minutes"),
            ("heure", "heures"),
            ("jour", "jours"),
        ],
        _ => [("minute", "minutes"), ("hour", "hours"), ("day", "days")],
    };
    let (one, many) = words[unit];
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The primary language of a tag (`fr-CA` → `fr`), if it is a shipped one. Case-insensitive;
/// `_` is read as `-` (`fr_CA`).
pub(crate) fn locale_of_tag(tag: &str) -> Option<Locale> {
    let primary = tag.trim().split(['-', '_']).next()?;
    LOCALES
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(primary))
}

/// The shipped language an `Accept-Language` header prefers (RFC 9110 §12.5.4): ranges by
/// descending `q` (ties keep their order; `q=0` excludes), each matched by its primary
/// language (`fr-CA` → `fr`); `*` is the default language. `None` when nothing matches.
pub(crate) fn negotiate(header: &str, default: Locale) -> Option<Locale> {
    let mut ranges: Vec<(u16, usize, &str)> = Vec::new();
    // A bounded number of entries: the header is the client's to make long.
    for (i, item) in header.split(',').take(32).enumerate() {
        let mut parts = item.split(';');
        let range = parts.next().unwrap_or("").trim();
        if range.is_empty() || !is_language_range(range) {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("q") {
                q = parse_q(v.trim());
            }
        }
        match q {
            Some(q) if q > 0 => ranges.push((q, i, range)),
            // `q=0`: not acceptable; an unreadable weight drops the entry.
            _ => {}
        }
    }
    ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.into_iter().find_map(|(_, _, range)| {
        if range == "*" {
            Some(default)
        } else {
            locale_of_tag(range)
        }
    })
}

/// `*`, or a language tag ([`is_language_tag`]).
fn is_language_range(s: &str) -> bool {
    s == "*" || is_language_tag(s)
}

/// 1–8 letters, then `-` subtags of 1–8 letters or digits (`fr`, `fr-CA`, `zh-Hant-TW`).
pub(crate) fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    let ok = |p: &str, digits: bool| {
        (1..=8).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_alphabetic() || (digits && b.is_ascii_digit()))
    };
    ok(first, false) && parts.all(|p| ok(p, true))
}

/// A weight (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
