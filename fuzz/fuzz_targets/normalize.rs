//! The normalization rules (`graph::normalize`), fed arbitrary text. Properties: nothing
//! panics; every key is a fixed point of its own rule (normalizing a key again gives the same
//! key), so keys compared across harvests and configurations stay comparable; the name
//! disagreement test is symmetric.
#![no_main]

use graph::normalize::{fold, last_name_key, name_key, names_disagree, Normalizer};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn normalizer() -> &'static Normalizer {
    static N: OnceLock<Normalizer> = OnceLock::new();
    N.get_or_init(|| {
        Normalizer::new(
            &[vec!["acme.com".into(), "acme-law.com".into()]],
            &[
                vec!["ACME".into(), "ACMELAW".into(), "acme.com".into()],
                vec!["BETA".into(), "beta.example".into()],
            ],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Two strings from one input, for the pairwise rules.
    let (a, b) = text.split_once('\u{0}').unwrap_or((&text, ""));

    let folded = fold(a);
    assert_eq!(fold(&folded), folded, "fold is idempotent for {a:?}");

    let name = name_key(a);
    assert_eq!(name_key(&name), name, "name_key is idempotent for {a:?}");
    let _ = last_name_key(a);

    let n = normalizer();
    if let Some(email) = n.email_key(a) {
        assert_eq!(
            n.email_key(&email).as_deref(),
            Some(email.as_str()),
            "email_key is idempotent for {a:?}"
        );
    }
    if let Some(login) = n.login_key(a) {
        assert_eq!(
            n.login_key(&login).as_deref(),
            Some(login.as_str()),
            "login_key is idempotent for {a:?}"
        );
    }

    let (first_a, last_a) = a.split_once(' ').unwrap_or((a, ""));
    let (first_b, last_b) = b.split_once(' ').unwrap_or((b, ""));
    let x = (name_key(first_a), last_name_key(last_a));
    let y = (name_key(first_b), last_name_key(last_b));
    assert_eq!(
        names_disagree((&x.0, &x.1), (&y.0, &y.1)),
        names_disagree((&y.0, &y.1), (&x.0, &x.1)),
        "names_disagree is symmetric for {a:?} / {b:?}"
    );
});
