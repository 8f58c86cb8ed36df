//! The access rule: what one account may do in one workspace.
//!
//! This is the one place that decides it; `docs/RESOLUTION.md` states it in prose. When better
//! knowledge of iManage's own rule turns up, this function is what changes.

use model::{Access, DefaultSecurity, SecurityMode};

/// How an account's access to a workspace was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The account's own entry on the workspace.
    Explicit(Access),
    /// The entries of the account's groups, combined by the database's security mode; the index
    /// is the position (in the slice given) of the group entry that decided.
    Groups(Access, usize),
    /// The workspace's default security.
    Default(Access),
}

impl Decision {
    pub fn access(self) -> Access {
        match self {
            Decision::Explicit(a) | Decision::Groups(a, _) | Decision::Default(a) => a,
        }
    }
}

/// The effective access of one account to one workspace.
///
/// 1. The account's own entry, if it has one, decides.
/// 2. Otherwise, if any of the account's groups has an entry, the group entries decide: under
///    the optimistic mode the highest level wins, under the pessimistic mode the lowest (so one
///    `no_access` group entry denies).
/// 3. Otherwise the workspace's default security decides: `public` gives `read_write`, `view`
///    gives `read`, `private` gives nothing.
///
/// Security Policy Manager, which can deny access before any of this, is outside the API and so
/// outside this rule.
pub fn effective_access(
    explicit: Option<Access>,
    group_entries: &[Access],
    mode: SecurityMode,
    default: DefaultSecurity,
) -> Decision {
    if let Some(a) = explicit {
        return Decision::Explicit(a);
    }
    let chosen = match mode {
        SecurityMode::Optimistic => group_entries
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| a.cmp(b).then(j.cmp(i))),
        SecurityMode::Pessimistic => group_entries
            .iter()
            .enumerate()
            .min_by(|(i, a), (j, b)| a.cmp(b).then(i.cmp(j))),
    };
    match chosen {
        Some((i, a)) => Decision::Groups(*a, i),
        None => Decision::Default(default.access()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Access::*;

    const LEVELS: [Access; 4] = [NoAccess, Read, ReadWrite, FullAccess];
    const DEFAULTS: [DefaultSecurity; 3] = [
        DefaultSecurity::Private,
        DefaultSecurity::View,
        DefaultSecurity::Public,
    ];
    const MODES: [SecurityMode; 2] = [SecurityMode::Optimistic, SecurityMode::Pessimistic];

    #[test]
    fn explicit_entry_always_wins() {
        for explicit in LEVELS {
            for mode in MODES {
                for default in DEFAULTS {
                    for groups in [vec![], vec![FullAccess], vec![NoAccess, FullAccess]] {
                        let d = effective_access(Some(explicit), &groups, mode, default);
                        assert_eq!(d, Decision::Explicit(explicit));
                    }
                }
            }
        }
    }

    #[test]
    fn groups_decide_by_mode_over_default() {
        // Every pair of group levels, under both modes and every default.
        for a in LEVELS {
            for b in LEVELS {
                for default in DEFAULTS {
                    let opt = effective_access(None, &[a, b], SecurityMode::Optimistic, default);
                    assert_eq!(opt.access(), a.max(b), "{a:?} {b:?} optimistic");
                    let pes = effective_access(None, &[a, b], SecurityMode::Pessimistic, default);
                    assert_eq!(pes.access(), a.min(b), "{a:?} {b:?} pessimistic");
                    assert!(matches!(opt, Decision::Groups(..)));
                }
            }
        }
    }

    #[test]
    fn one_no_access_group_denies_under_pessimistic_mode() {
        let d = effective_access(
            None,
            &[FullAccess, NoAccess, Read],
            SecurityMode::Pessimistic,
            DefaultSecurity::Public,
        );
        assert_eq!(d, Decision::Groups(NoAccess, 1));
        let d = effective_access(
            None,
            &[FullAccess, NoAccess, Read],
            SecurityMode::Optimistic,
            DefaultSecurity::Private,
        );
        assert_eq!(d, Decision::Groups(FullAccess, 0));
    }

    #[test]
    fn default_security_when_nothing_else_decides() {
        for mode in MODES {
            assert_eq!(
                effective_access(None, &[], mode, DefaultSecurity::Public),
                Decision::Default(ReadWrite)
            );
            assert_eq!(
                effective_access(None, &[], mode, DefaultSecurity::View),
                Decision::Default(Read)
            );
            assert_eq!(
                effective_access(None, &[], mode, DefaultSecurity::Private),
                Decision::Default(NoAccess)
            );
        }
    }
}
