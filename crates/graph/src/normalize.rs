//! Normalization of login names, emails and personal names into comparable keys.
//!
//! The rules are written out in `docs/RESOLUTION.md`; this module is the only place that
//! implements them.

use std::collections::HashMap;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Trim, Unicode compatibility normalization (NFKC) and full case folding.
pub fn fold(s: &str) -> String {
    let mut out = String::new();
    fold_into(s, &mut out);
    out
}

/// [`fold`] into a reused buffer (cleared first). ASCII input, the common case, takes a fast
/// path that allocates nothing once `out` has grown.
pub fn fold_into(s: &str, out: &mut String) {
    out.clear();
    let s = s.trim();
    if s.is_ascii() {
        out.push_str(s);
        out.make_ascii_lowercase();
        return;
    }
    let nfkc: String = s.nfkc().collect();
    out.extend(caseless::default_case_fold_str(&nfkc).nfkc());
    // Normalization can make whitespace at the ends (U+0385 becomes a space and marks).
    if out.starts_with(char::is_whitespace) || out.ends_with(char::is_whitespace) {
        *out = out.trim().to_string();
    }
}

/// A personal name folded for comparison: case folded, diacritics stripped, letters and digits
/// only (`José` = `Jose`, `O'Brien` = `OBrien`, `Søren` = `Soren`).
pub fn name_key(s: &str) -> String {
    let mut out = String::new();
    push_name_key(s, &mut out);
    out
}

/// Appends [`name_key`] of `s` to `out`.
pub fn push_name_key(s: &str, out: &mut String) {
    if s.is_ascii() {
        out.extend(
            s.bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| b.to_ascii_lowercase() as char),
        );
        return;
    }
    let folded = fold(s);
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
}

/// The comparison key of a last name: [`name_key`] of the whole name, followed (for a name of
/// several parts, `Smith-Jones`, `van der Berg`) by `|` and the key of each part. `|` never
/// occurs in a key, which holds letters and digits only.
pub fn last_name_key(s: &str) -> String {
    let mut out = String::new();
    push_last_name_key(s, &mut out);
    out
}

/// Appends [`last_name_key`] of `s` to `out`.
pub fn push_last_name_key(s: &str, out: &mut String) {
    push_name_key(s, out);
    let parts = || {
        s.split(|c: char| c.is_whitespace() || c == '-')
            .filter(|p| !p.trim().is_empty())
    };
    if parts().nth(1).is_some() {
        for part in parts() {
            let mark = out.len();
            out.push('|');
            push_name_key(part, out);
            if out.len() == mark + 1 {
                out.truncate(mark);
            }
        }
    }
}

/// Whether two people's names clearly disagree. Takes `(name_key(first), last_name_key(last))`.
///
/// Last names disagree when both are present and differ, unless one is a part of the other's
/// several-part name (`Smith` agrees with `Smith-Jones`; `Li` does not agree with `Williams`,
/// nor `Ng` with `Nguyen`). First names disagree when both are present and neither is a prefix
/// of the other (so an initial `J` or a short form `Chris` agrees with `John` or
/// `Christopher`). A missing name never disagrees.
pub fn names_disagree(a: (&str, &str), b: (&str, &str)) -> bool {
    let (af, al) = a;
    let (bf, bl) = b;
    fn whole(k: &str) -> &str {
        k.split('|').next().unwrap_or("")
    }
    let (wa, wb) = (whole(al), whole(bl));
    if !wa.is_empty() && !wb.is_empty() && wa != wb {
        let is_part = |whole: &str, of: &str| of.split('|').skip(1).any(|p| p == whole);
        if !is_part(wa, bl) && !is_part(wb, al) {
            return true;
        }
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
    /// Login domain (folded): NetBIOS names and DNS domains -> the canonical (first, folded)
    /// name of its group.
    login_domains: HashMap<String, String>,
    /// The canonical name of the first login group: the firm's own domain, whose logins
    /// compare equal to bare logins.
    home: Option<String>,
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
        let home = login_aliases
            .iter()
            .find_map(|g| g.first())
            .map(|d| fold(d));
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
            home,
        }
    }

    /// The comparable key of an email: folded, with the domain mapped through its aliases.
    /// `None` for an empty value or one without `@`.
    pub fn email_key(&self, raw: &str) -> Option<String> {
        let mut out = String::new();
        self.email_key_into(raw, &mut String::new(), &mut out)
            .then_some(out)
    }

    /// [`Normalizer::email_key`] into `out` (cleared first), with `scratch` as working space;
    /// `false` when there is no key. Allocates nothing once the buffers have grown.
    pub fn email_key_into(&self, raw: &str, scratch: &mut String, out: &mut String) -> bool {
        out.clear();
        fold_into(raw, scratch);
        let Some((local, domain)) = scratch.rsplit_once('@') else {
            return false;
        };
        if local.is_empty() || domain.is_empty() {
            return false;
        }
        let domain = self
            .email_domains
            .get(domain)
            .map(String::as_str)
            .unwrap_or(domain);
        out.push_str(local);
        out.push('@');
        out.push_str(domain);
        true
    }

    /// The comparable key of a login name.
    ///
    /// `DOMAIN\\user` and `user@domain` name the same account. The domain decides the key:
    /// - none, a domain of the first login alias group (the firm's own), or one of the firm's
    ///   email domains: the key is `user`, so `jdoe`, `JDoe`, `ACME\\jdoe` and `jdoe@acme.com`
    ///   meet;
    /// - a domain of another login alias group: `user@canonical`, the group's first name;
    /// - any other domain (a client's NetBIOS domain, an external user's own email): the whole
    ///   folded `user@domain`, so `CLIENT\\jdoe` and `jane@client.com` never meet the firm's
    ///   `jdoe` and `jane`.
    pub fn login_key(&self, raw: &str) -> Option<String> {
        let mut out = String::new();
        self.login_key_into(raw, &mut String::new(), &mut out)
            .then_some(out)
    }

    /// [`Normalizer::login_key`] into `out` (cleared first), with `scratch` as working space;
    /// `false` when there is no key. Allocates nothing once the buffers have grown.
    pub fn login_key_into(&self, raw: &str, scratch: &mut String, out: &mut String) -> bool {
        out.clear();
        fold_into(raw, scratch);
        let s = scratch.as_str();
        if s.is_empty() {
            return false;
        }
        let (user, domain) = if let Some((domain, user)) = s.rsplit_once('\\') {
            (user, domain)
        } else if let Some((user, domain)) = s.rsplit_once('@') {
            (user, domain)
        } else {
            out.push_str(s);
            return true;
        };
        // Whitespace around the separator is no part of either side (the whole was trimmed,
        // its parts must be too, or a key would not key to itself).
        let (user, domain) = (user.trim(), domain.trim());
        // A login with more than one domain separator is no form iManage uses, and guessing
        // which part is the domain would make a key that does not key to itself: kept whole.
        if user.contains(['\\', '@']) || domain.contains(['\\', '@']) {
            out.push_str(s);
            return true;
        }
        if user.is_empty() {
            return false;
        }
        out.push_str(user);
        if domain.is_empty() {
            return true;
        }
        match self.login_domains.get(domain) {
            Some(canonical) if Some(canonical) == self.home.as_ref() => {}
            Some(canonical) => {
                out.push('@');
                out.push_str(canonical);
            }
            None if self.email_domains.contains_key(domain) => {}
            None => {
                out.push('@');
                out.push_str(domain);
            }
        }
        true
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
    fn foreign_and_other_group_domains_stay_apart() {
        let n = Normalizer::new(
            &[vec!["acme.com".into()]],
            &[
                vec!["ACME".into()],
                vec!["BETA".into(), "beta.example".into()],
            ],
        );
        assert_eq!(
            n.login_key("CLIENTCORP\\jdoe").as_deref(),
            Some("jdoe@clientcorp")
        );
        assert_eq!(
            n.login_key("jdoe@clientcorp").as_deref(),
            Some("jdoe@clientcorp")
        );
        assert_eq!(n.login_key("BETA\\jdoe").as_deref(), Some("jdoe@beta"));
        assert_eq!(
            n.login_key("jdoe@beta.example").as_deref(),
            Some("jdoe@beta")
        );
        assert_eq!(n.login_key("ACME\\jdoe").as_deref(), Some("jdoe"));
        assert_eq!(n.login_key("jdoe@acme.com").as_deref(), Some("jdoe"));
        assert_eq!(n.login_key("\\jdoe").as_deref(), Some("jdoe"));
    }

    #[test]
    fn logins_with_several_domain_parts_are_kept_whole_and_key_to_themselves() {
        // Found by fuzzing (fuzz/fuzz_targets/normalize.rs): `ACME\\JDACME\\JDoe` keyed to
        // `jdoe@acme\\jdacme`, whose own key was `jdacme@jdoe@acme`.
        let n = acme();
        for raw in [
            "ACME\\JDACME\\JDoe",
            "x\\a@client.com",
            "ACME\\jdoe@acme.com",
            "a@b@c",
            "\\\\x",
        ] {
            let key = n.login_key(raw).expect("a key");
            assert_eq!(n.login_key(&key).as_deref(), Some(key.as_str()), "{raw}");
        }
        assert_eq!(
            n.login_key("ACME\\JDACME\\JDoe").as_deref(),
            Some("acme\\jdacme\\jdoe")
        );
        assert_eq!(n.login_key("jdoe \u{b}@").as_deref(), Some("jdoe"));
        assert_eq!(n.login_key("ACME\\ jdoe").as_deref(), Some("jdoe"));
        assert_eq!(n.login_key("ACME\\jdoe").as_deref(), Some("jdoe"));
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
        // Found by fuzzing: compatibility normalization can turn a character into a space
        // and a combining mark (U+0385), so the result is trimmed again.
        let once = fold("\u{385} \u{385}Ac");
        assert!(!once.starts_with(char::is_whitespace), "{once:?}");
        assert_eq!(fold(&once), once);
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
        let smith_jones = last_name_key("Smith-Jones");
        assert!(!names_disagree(("anna", "smith"), ("anna", &smith_jones)));
        assert!(names_disagree(("john", "li"), ("john", "williams")));
        assert!(names_disagree(("john", "ng"), ("john", "nguyen")));
        assert_eq!(last_name_key("Ó Briain"), "obriain|o|briain");
        assert!(!names_disagree(
            ("sean", &last_name_key("Ó Briain")),
            ("sean", "obriain")
        ));
        assert!(!names_disagree(("", "smith"), ("jane", "smith")));
        assert!(!names_disagree(("", ""), ("jane", "smith")));
    }
}
