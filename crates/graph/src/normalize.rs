// NOTE TO THE GRAPH ENGINEER: read crates/graph/NOTICE-TO-GRAPH-ENGINEER.md before editing this crate.
//! Normalization of login names, emails and personal names into comparable keys.
//!
//! The rules are written out in `docs/RESOLUTION.md`; this module is the only place that
//! implements them.

use std::collections::HashMap;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Trim, Unicode compatibility normalization (NFKC) and full case folding.
pub fn fold(s: &str) -> String {
    let s = s.trim();
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let nfkc: String = s.nfkc().collect();
    caseless::default_case_fold_str(&nfkc).nfkc().collect()
}

/// A personal name folded for comparison: case folded, diacritics stripped, letters and digits
/// only (`José` = `Jose`, `O'Brien` = `OBrien`, `Søren` = `Soren`).
pub fn name_key(s: &str) -> String {
    if s.is_ascii() {
        return s
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
    }
    let folded = fold(s);
    let mut out = String::with_capacity(folded.len());
    for c in folded.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'đ' | 'ð' => out.push('d'),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'þ' => out.push_str("th"),
            'ı' => out.push('i'),
            c if c.is_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether two people's names clearly disagree.
///
/// Last names disagree when both are present and neither contains the other (so `Smith` and
/// `Smith-Jones` agree). First names disagree when both are present and neither is a prefix of
/// the other (so an initial `J` or a short form `Chris` agrees with `John` or `Christopher`).
/// A missing name never disagrees.
pub fn names_disagree(a: (&str, &str), b: (&str, &str)) -> bool {
    let (af, al) = a;
    let (bf, bl) = b;
    if !al.is_empty() && !bl.is_empty() && !al.contains(bl) && !bl.contains(al) {
        return true;
    }
    if !af.is_empty() && !bf.is_empty() && !af.starts_with(bf) && !bf.starts_with(af) {
        return true;
    }
    false
}

/// Maps domains to their canonical spelling, from the configured alias groups.
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    /// Email domain (folded) -> canonical email domain.
    email_domains: HashMap<String, String>,
    /// Login domain (folded): NetBIOS names and DNS domains of the firm -> canonical.
    login_domains: HashMap<String, String>,
}

impl Normalizer {
    pub fn new(email_aliases: &[Vec<String>], login_aliases: &[Vec<String>]) -> Self {
        let mut email_domains = HashMap::new();
        for group in email_aliases {
            let Some(first) = group.first() else { continue };
            let canonical = fold(first);
            for d in group {
                email_domains.insert(fold(d), canonical.clone());
            }
        }
        let mut login_domains = HashMap::new();
        for group in login_aliases {
            let Some(first) = group.first() else { continue };
            let canonical = fold(first);
            for d in group {
                login_domains.insert(fold(d), canonical.clone());
            }
        }
        Self {
            email_domains,
            login_domains,
        }
    }

    /// The comparable key of an email: folded, with the domain mapped through its aliases.
    /// `None` for an empty value or one without `@`.
    pub fn email_key(&self, raw: &str) -> Option<String> {
        let s = fold(raw);
        let (local, domain) = s.rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() {
            return None;
        }
        let domain = self
            .email_domains
            .get(domain)
            .map(String::as_str)
            .unwrap_or(domain);
        Some(format!("{local}@{domain}"))
    }

    /// The comparable key of a login name.
    ///
    /// - `DOMAIN\user` is a Windows account of the firm: the key is `user`.
    /// - `user@domain` with a domain of the firm (a configured login or email domain alias) is
    ///   the same account name: the key is `user`.
    /// - `user@domain` with any other domain (an external user signing in with their own email)
    ///   keeps the whole folded address as its key, so it never collides with an internal login.
    /// - a bare `user` is its own key.
    pub fn login_key(&self, raw: &str) -> Option<String> {
        let s = fold(raw);
        if s.is_empty() {
            return None;
        }
        if let Some((_, user)) = s.rsplit_once('\\') {
            return (!user.is_empty()).then(|| user.to_string());
        }
        if let Some((user, domain)) = s.rsplit_once('@') {
            if user.is_empty() {
                return None;
            }
            if self.login_domains.contains_key(domain) || self.email_domains.contains_key(domain) {
                return Some(user.to_string());
            }
            return Some(s);
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Normalizer {
        Normalizer::new(
            &[vec!["acme.com".into(), "acme-law.com".into()]],
            &[vec!["ACME".into(), "ACMELAW".into()]],
        )
    }

    #[test]
    fn login_forms_meet_in_one_key() {
        let n = acme();
        for form in [
            "jdoe",
            "JDoe",
            " jdoe ",
            "ACME\\jdoe",
            "acmelaw\\JDOE",
            "jdoe@acme.com",
            "JDoe@Acme-Law.com",
        ] {
            assert_eq!(n.login_key(form).as_deref(), Some("jdoe"), "{form}");
        }
    }

    #[test]
    fn external_logins_keep_their_domain() {
        let n = acme();
        assert_eq!(
            n.login_key("J.Doe@Client.example").as_deref(),
            Some("j.doe@client.example")
        );
        assert_ne!(n.login_key("jdoe@client.example"), n.login_key("jdoe"));
    }

    #[test]
    fn empty_logins_have_no_key() {
        let n = acme();
        assert_eq!(n.login_key(""), None);
        assert_eq!(n.login_key("   "), None);
        assert_eq!(n.login_key("ACME\\"), None);
        assert_eq!(n.login_key("@acme.com"), None);
    }

    #[test]
    fn emails_fold_case_and_domain_aliases() {
        let n = acme();
        assert_eq!(
            n.email_key(" John.Doe@ACME-LAW.com").as_deref(),
            Some("john.doe@acme.com")
        );
        assert_eq!(
            n.email_key("john.doe@acme.com"),
            n.email_key("JOHN.DOE@Acme.Com")
        );
        assert_ne!(
            n.email_key("john.doe@client.com"),
            n.email_key("john.doe@acme.com")
        );
        assert_eq!(n.email_key("not-an-email"), None);
        assert_eq!(n.email_key(""), None);
    }

    #[test]
    fn unicode_case_folding() {
        assert_eq!(fold("STRASSE"), fold("straße"));
        assert_eq!(fold("ΣΊΣΥΦΟΣ"), fold("σίσυφος"));
        assert_eq!(fold("ﬁle"), "file");
    }

    #[test]
    fn names_compare_without_diacritics() {
        assert_eq!(name_key("José"), name_key("Jose"));
        assert_eq!(name_key("Zoë"), "zoe");
        assert_eq!(name_key("Søren"), "soren");
        assert_eq!(name_key("Łukasz"), "lukasz");
        assert_eq!(name_key("Müller"), "muller");
        assert_eq!(name_key("Ó Briain"), "obriain");
        assert_eq!(name_key("O'Brien"), "obrien");
        assert_eq!(name_key("Nguyễn"), "nguyen");
    }

    #[test]
    fn clear_disagreement() {
        assert!(names_disagree(("john", "smith"), ("jane", "smith")));
        assert!(names_disagree(("john", "smith"), ("john", "jones")));
        assert!(!names_disagree(("john", "smith"), ("j", "smith")));
        assert!(!names_disagree(
            ("chris", "smith"),
            ("christopher", "smith")
        ));
        assert!(!names_disagree(("anna", "smith"), ("anna", "smithjones")));
        assert!(!names_disagree(("", "smith"), ("jane", "smith")));
        assert!(!names_disagree(("", ""), ("jane", "smith")));
    }
}
