//! Snapshots of every mail in every language (`snapshots/`, rewritten with
//! `NAUTH_MAIL_BLESS=1`), the rules every text part keeps, `Accept-Language` negotiation and
//! the override directory.

use super::*;

/// Fixed inputs for the snapshots: a first name with markup (escaped in HTML only), every
/// optional part that the mail can carry.
fn snapshot_vars(kind: Kind) -> Vars {
    Vars {
        first_name: Some("Jane <b>&</b>".to_owned()),
        code: kind.has_code().then(|| "123456".to_owned()),
        code_ttl: kind.has_code().then_some(Duration::from_secs(15 * 60)),
        link: kind.has_link().then(|| {
            format!(
                "https://app.example/auth/{}?token=Tok_{}-1",
                kind.name(),
                kind.name()
            )
        }),
        link_ttl: kind.has_link().then_some(Duration::from_secs(3600)),
        new_email: matches!(kind, Kind::EmailChanged | Kind::EmailChangedByAdmin)
            .then(|| "n***w@example.org".to_owned()),
        method: matches!(kind, Kind::MfaFactorAdded | Kind::MfaFactorRemoved).then_some("totp"),
        provider: None,
    }
}

fn config(product: &str, dir: &str) -> EmailConfig {
    EmailConfig {
        product_name: product.to_owned(),
        templates_dir: dir.to_owned(),
        ..EmailConfig::default()
    }
}

fn embedded() -> Templates {
    Templates::load(&config("Acme", "")).expect("the embedded templates load")
}

/// Standalone runs of exactly six digits (what a reader, and the testkit, takes for a code).
fn six_digit_runs(text: &str) -> usize {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let alone = (start == 0 || !word(b[start - 1])) && (i == b.len() || !word(b[i]));
        n += usize::from(i - start == 6 && alone);
    }
    n
}

#[test]
fn every_mail_matches_its_snapshot() {
    let t = embedded();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mail/snapshots");
    let bless = std::env::var_os("NAUTH_MAIL_BLESS").is_some();
    let mut differ = Vec::new();
    for locale in LOCALES {
        for kind in Kind::ALL {
            let r = t
                .render(kind, locale, "jane.doe@example.com", &snapshot_vars(kind))
                .expect("renders");
            let got = format!(
                "subject: {}\n==== text ====\n{}==== html ====\n{}",
                r.subject, r.text, r.html
            );
            let file = dir.join(format!("{}.{}.snap", kind.name(), locale.as_str()));
            if bless {
                std::fs::create_dir_all(&dir).expect("snapshot dir");
                std::fs::write(&file, &got).expect("write snapshot");
                continue;
            }
            let want = std::fs::read_to_string(&file).unwrap_or_default();
            if want != got {
                differ.push(format!("{}:\n{got}", file.display()));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "mails differ from their snapshots (NAUTH_MAIL_BLESS=1 rewrites them):\n{}",
        differ.join("\n")
    );
}

#[test]
fn text_parts_carry_one_code_one_link_and_nothing_like_them() {
    let t = embedded();
    for locale in LOCALES {
        for kind in Kind::ALL {
            for with_link in [true, false] {
                let mut vars = snapshot_vars(kind);
                if !with_link && kind != Kind::MagicLink {
                    vars.link = None;
                }
                let r = t
                    .render(kind, locale, "jane.doe@example.com", &vars)
                    .expect("renders");
                let what = format!("{kind:?} {locale:?} link={with_link}");
                let codes = six_digit_runs(&r.text);
                assert_eq!(codes, usize::from(kind.has_code()), "{what}:\n{}", r.text);
                if kind.has_code() {
                    assert!(r.text.contains("123456"), "{what}");
                }
                let links = usize::from(vars.link.is_some());
                assert_eq!(r.text.matches("token=").count(), links, "{what}");
                assert_eq!(r.text.matches("://").count(), links, "{what}");
                assert!(
                    r.text.ends_with('\n') && !r.text.contains("\n\n\n"),
                    "{what}"
                );
                assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{what}");
                assert!(
                    r.text.contains("j***e@example.com"),
                    "{what}: the masked account"
                );
                assert!(r.text.contains("Acme") && r.html.contains("Acme"), "{what}");
                // The link (if any) is the HTML's only one, escaped as an attribute value.
                assert_eq!(r.html.matches("href=").count(), links, "{what}");
                assert!(r.html.contains(&format!("lang=\"{}\"", locale.as_str())));
            }
        }
    }
}

#[test]
fn user_text_is_escaped_in_html_only() {
    let t = embedded();
    let vars = snapshot_vars(Kind::VerifyEmail);
    let r = t
        .render(Kind::VerifyEmail, Locale::Fr, "x@example.com", &vars)
        .expect("renders");
    assert!(
        r.html
            .contains("Bonjour Jane &lt;b&gt;&amp;&lt;&#x2f;b&gt;,"),
        "{}",
        r.html
    );
    assert!(!r.html.contains("<b>&</b>"));
    assert!(r.text.starts_with("Bonjour Jane <b>&</b>,\n"), "{}", r.text);
    // A product name is the operator's, but escaped all the same.
    let t = Templates::load(&config("A&B <Co>", "")).expect("loads");
    let r = t
        .render(
            Kind::MfaCode,
            Locale::En,
            "x@example.com",
            &snapshot_vars(Kind::MfaCode),
        )
        .expect("renders");
    assert!(r.html.contains("A&amp;B &lt;Co&gt;") && !r.html.contains("<Co>"));
    assert_eq!(r.subject, "Your A&B <Co> sign-in code");
}

#[test]
fn without_a_first_name_the_greeting_is_plain() {
    let t = embedded();
    let mut vars = snapshot_vars(Kind::MagicLink);
    vars.first_name = Some("  ".to_owned());
    let r = t
        .render(Kind::MagicLink, Locale::En, "x@example.com", &vars)
        .expect("renders");
    assert!(r.text.starts_with("Hello,\n\nOpen this link"), "{}", r.text);
}

#[test]
fn expiries_are_said_in_whole_units() {
    let m = |s: u64| Duration::from_secs(s);
    let table = [
        (m(30), Locale::En, "1 minute"),
        (m(15 * 60), Locale::En, "15 minutes"),
        (m(15 * 60 + 59), Locale::En, "15 minutes"),
        (m(3600), Locale::En, "1 hour"),
        (m(90 * 60), Locale::En, "90 minutes"),
        (m(3 * 3600 + 1800), Locale::En, "3 hours"),
        (m(86_400), Locale::En, "24 hours"),
        (m(7 * 86_400), Locale::En, "7 days"),
        (m(3600), Locale::Fr, "1 heure"),
        (m(2 * 86_400), Locale::Fr, "2 jours"),
        (m(60), Locale::Fr, "1 minute"),
        (m(10 * 60), Locale::Fr, "10 minutes"),
        // Never a six-digit number, however long the life.
        (m(200_000 * 60), Locale::En, "138 days"),
    ];
    for (d, locale, want) in table {
        assert_eq!(duration_text(locale, d), want, "{d:?} {locale:?}");
    }
}

#[test]
fn accept_language_negotiation() {
    let en = Locale::En;
    let table: &[(&str, Locale, Option<Locale>)] = &[
        ("fr", en, Some(Locale::Fr)),
        ("fr-CA", en, Some(Locale::Fr)),
        ("FR-ca", en, Some(Locale::Fr)),
        ("de-DE, fr;q=0.5, en;q=0.4", en, Some(Locale::Fr)),
        ("en;q=0.4, fr;q=0.8", en, Some(Locale::Fr)),
        ("fr;q=0.8, en", en, Some(Locale::En)),
        ("fr;q=0, en;q=0.1", en, Some(Locale::En)),
        ("fr;q=0.000", en, None),
        ("de, es", en, None),
        ("de, *;q=0.1", Locale::Fr, Some(Locale::Fr)),
        ("*", en, Some(Locale::En)),
        ("", en, None),
        ("fr;q=2", en, None),
        ("fr;q=abc, en;q=0.5", en, Some(Locale::En)),
        ("fr;q=0.5;level=1", en, Some(Locale::Fr)),
        (" en-GB ; q=0.9 , fr ; q=0.95", en, Some(Locale::Fr)),
        ("fr-, en", en, Some(Locale::En)),
        ("x-klingon, fr", en, Some(Locale::Fr)),
        ("zh-Hant-TW, fr;q=0.2", en, Some(Locale::Fr)),
        ("1fr, fr;q=0.3", en, Some(Locale::Fr)),
    ];
    for (header, default, want) in table {
        assert_eq!(negotiate(header, *default), *want, "{header:?}");
    }
    // Ties keep the header's order.
    assert_eq!(negotiate("fr;q=0.5, en;q=0.5", en), Some(Locale::Fr));
    assert_eq!(negotiate("en;q=0.5, fr;q=0.5", en), Some(Locale::En));
}

#[test]
fn language_tags_of_a_stored_locale() {
    assert_eq!(locale_of_tag("fr"), Some(Locale::Fr));
    assert_eq!(locale_of_tag("fr-CA"), Some(Locale::Fr));
    assert_eq!(locale_of_tag("fr_CA"), Some(Locale::Fr));
    assert_eq!(locale_of_tag("EN"), Some(Locale::En));
    assert_eq!(locale_of_tag("de"), None);
    assert_eq!(locale_of_tag(""), None);
}

#[test]
fn the_product_name_defaults_to_the_senders_name() {
    let from = |f: &str| EmailConfig {
        from: f.to_owned(),
        ..EmailConfig::default()
    };
    assert_eq!(product_name(&EmailConfig::default()), "nauth");
    assert_eq!(
        product_name(&from("Acme Shop <no-reply@acme.test>")),
        "Acme Shop"
    );
    assert_eq!(
        product_name(&from("\"Acme, Inc.\" <a@acme.test>")),
        "Acme, Inc."
    );
    assert_eq!(product_name(&from("no-reply@acme.test")), "nauth");
    assert_eq!(product_name(&from("<no-reply@acme.test>")), "nauth");
    let mut cfg = from("Acme Shop <no-reply@acme.test>");
    cfg.product_name = " Acme ".to_owned();
    assert_eq!(product_name(&cfg), "Acme");
}

/// A fresh directory in the temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("nauth-mail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    fn write(&self, rel: &str, content: &str) {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dir");
        }
        std::fs::write(path, content).expect("write");
    }
    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MY_RESET: &str = r#"{% extends "fr/layout.txt" %}
{% block subject %}Nouveau mot de passe pour {{ product }}{% endblock %}
{% block body %}
Code : {{ code }}
{% if link %}
Lien : {{ link }}
{% endif %}
{% endblock %}
"#;

#[test]
fn a_template_in_the_directory_replaces_the_embedded_one() {
    let dir = TempDir::new();
    dir.write("fr/reset_password.txt", MY_RESET);
    dir.write("README.md", "not a template: left alone");
    let t = Templates::load(&config("Acme", &dir.path())).expect("loads");
    let vars = snapshot_vars(Kind::ResetPassword);
    let r = t
        .render(Kind::ResetPassword, Locale::Fr, "x@example.com", &vars)
        .expect("renders");
    assert_eq!(r.subject, "Nouveau mot de passe pour Acme");
    assert!(
        r.text.contains("Code : 123456\nLien : https://"),
        "{}",
        r.text
    );
    // The HTML part and the other language are still the embedded ones.
    assert!(r.html.contains("Choisir un nouveau mot de passe"));
    let en = t
        .render(Kind::ResetPassword, Locale::En, "x@example.com", &vars)
        .expect("renders");
    assert_eq!(en.subject, "Reset your Acme password");
}

#[test]
fn a_broken_directory_is_refused_at_startup() {
    let refused = |files: &[(&str, &str)]| -> ConfigError {
        let dir = TempDir::new();
        for (rel, content) in files {
            dir.write(rel, content);
        }
        Templates::load(&config("Acme", &dir.path())).expect_err("refused")
    };
    let e = refused(&[(
        "fr/reset_password.txt",
        "{% block subject %}x{% endblock %}{{ code ",
    )]);
    assert_eq!(e.key, "email.templates_dir");
    assert!(e.message.contains("fr/reset_password.txt"), "{}", e.message);
    assert!(e.message.contains("syntax error"), "{}", e.message);
    // Compiles, but drops the code.
    let e = refused(&[(
        "en/mfa_code.txt",
        "{% block subject %}Code{% endblock %}Hello",
    )]);
    assert!(
        e.message.contains("en/mfa_code.txt") && e.message.contains("`code`"),
        "{}",
        e.message
    );
    // Compiles, but names a variable that does not exist.
    let e = refused(&[("en/magic_link.html", "{{ lnk }}")]);
    assert!(e.message.contains("en/magic_link.html"), "{}", e.message);
    assert!(e.message.contains("undefined"), "{}", e.message);
    // An empty subject.
    let e = refused(&[("en/magic_link.txt", "{{ link }}")]);
    assert!(e.message.contains("subject"), "{}", e.message);
    // A typo in a file name, a language that is not shipped, a file outside a language.
    let e = refused(&[("en/reset_pasword.txt", "x")]);
    assert!(
        e.message.contains("en/reset_pasword.txt: unknown template"),
        "{}",
        e.message
    );
    let e = refused(&[("de/reset_password.txt", "x")]);
    assert!(
        e.message.contains("de/: not a shipped language"),
        "{}",
        e.message
    );
    let e = refused(&[("reset_password.txt", "x")]);
    assert!(e.message.contains("language directory"), "{}", e.message);
    // A directory that is not there.
    let e = Templates::load(&config("Acme", "/nonexistent/nauth-templates")).expect_err("refused");
    assert!(
        e.message.contains("cannot read the directory"),
        "{}",
        e.message
    );
}

#[test]
fn the_configuration_check_reports_a_broken_template() {
    let dir = TempDir::new();
    dir.write("en/verify_email.html", "{% if %}");
    let toml = format!(
        "secret = \"0123456789abcdef0123456789abcdef\"\n[email]\ntemplates_dir = {:?}\n",
        dir.path()
    );
    let e = crate::config::from_toml_str(&toml).expect_err("refused");
    assert_eq!(e.key, "email.templates_dir");
    assert!(e.message.contains("en/verify_email.html"), "{}", e.message);
}

#[tokio::test]
async fn the_engine_refuses_to_start_with_a_broken_template() {
    let dir = TempDir::new();
    dir.write(
        "fr/mfa_code.html",
        "{% extends \"fr/layout.html\" %}{% block body %}{{ code }",
    );
    let mut cfg = crate::NAuthConfig {
        secret: "0123456789abcdef0123456789abcdef".into(),
        database_url: crate::store::tests::sqlite_url(),
        ..Default::default()
    };
    cfg.email.templates_dir = dir.path();
    match crate::NAuth::builder(cfg.clone()).build().await {
        Err(crate::StartError::Config(e)) => {
            assert_eq!(e.key, "email.templates_dir");
            assert!(e.message.contains("fr/mfa_code.html"), "{}", e.message);
        }
        other => panic!(
            "expected a configuration error, got {:?}",
            other.map(|_| ())
        ),
    }
    // Mended, it starts.
    dir.write(
        "fr/mfa_code.html",
        "{% extends \"fr/layout.html\" %}{% block body %}{{ code }}{% endblock %}",
    );
    let nauth = crate::NAuth::builder(cfg).build().await.expect("starts");
    nauth.close().await;
}

#[test]
fn sms_texts_speak_the_language_and_bind_the_code_to_the_site() {
    let t = Templates::load(&config("Acme", "")).expect("loads");
    let ttl = Duration::from_secs(15 * 60);
    let en = t.sms_text(
        Sms::SignIn,
        Locale::En,
        "123456",
        ttl,
        Some("app.example.com"),
    );
    assert_eq!(
        en,
        "123456 is your Acme sign-in code. It expires in 15 minutes. Never share it: Acme will \
         never ask you for it.\n\n@app.example.com #123456"
    );
    let fr = t.sms_text(
        Sms::Reset,
        Locale::Fr,
        "654321",
        Duration::from_secs(3600),
        None,
    );
    assert_eq!(
        fr,
        "654321 est votre code de réinitialisation du mot de passe Acme. Il expire dans \
         1 heure. Si vous ne l'avez pas demandé, ignorez ce message."
    );
    let verify = t.sms_text(Sms::Verify, Locale::En, "111222", ttl, Some(""));
    assert!(
        verify.starts_with("111222 is your Acme verification code."),
        "{verify}"
    );
    assert!(
        !verify.contains('@'),
        "no origin line without a host: {verify}"
    );
    // Every text fits one concatenated SMS and carries its code once before the origin line.
    for sms in [Sms::SignIn, Sms::Verify, Sms::Reset] {
        for locale in [Locale::En, Locale::Fr] {
            let text = t.sms_text(sms, locale, "987654", ttl, Some("app.example.com"));
            assert!(text.chars().count() <= 306, "{text}");
            let (body, origin) = text.split_once("\n\n@").expect("origin line");
            assert_eq!(body.matches("987654").count(), 1, "{text}");
            assert_eq!(origin, "app.example.com #987654");
        }
    }
}

#[test]
fn notices_name_passkeys_and_providers() {
    let t = Templates::load(&config("Acme", "")).expect("loads");
    let passkey = Vars {
        method: Some("passkey"),
        ..Default::default()
    };
    let r = t
        .render(Kind::MfaFactorAdded, Locale::En, "x@example.com", &passkey)
        .expect("renders");
    assert!(
        r.text.contains("A passkey was added to your Acme account"),
        "{}",
        r.text
    );
    let social = Vars {
        method: Some("social"),
        provider: Some("Google <b>".to_owned()),
        ..Default::default()
    };
    let r = t
        .render(Kind::MfaFactorRemoved, Locale::Fr, "x@example.com", &social)
        .expect("renders");
    assert!(
        r.text.contains("La connexion avec Google <b> a été déliée"),
        "{}",
        r.text
    );
    assert!(r.html.contains("Google &lt;b&gt;"), "{}", r.html);
}
