//! The challenge state machine (docs/api.md §2.1), as a pure function: given what is known about
//! the user and the policy, which challenge comes next, or tokens. No I/O here.

use crate::config::{MfaEnforcement, Verification};

/// The five challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChallengeName {
    /// Prove the email address with a code.
    VerifyEmail,
    /// Prove (or first give) the phone number.
    VerifyPhone,
    /// Enrol an MFA method.
    MfaSetupRequired,
    /// Prove the second factor.
    MfaRequired,
    /// Choose a new password.
    ForceChangePassword,
}

impl ChallengeName {
    /// The wire name, e.g. `VERIFY_EMAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeName::VerifyEmail => "VERIFY_EMAIL",
            ChallengeName::VerifyPhone => "VERIFY_PHONE",
            ChallengeName::MfaSetupRequired => "MFA_SETUP_REQUIRED",
            ChallengeName::MfaRequired => "MFA_REQUIRED",
            ChallengeName::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "VERIFY_EMAIL" => ChallengeName::VerifyEmail,
            "VERIFY_PHONE" => ChallengeName::VerifyPhone,
            "MFA_SETUP_REQUIRED" => ChallengeName::MfaSetupRequired,
            "MFA_REQUIRED" => ChallengeName::MfaRequired,
            "FORCE_CHANGE_PASSWORD" => ChallengeName::ForceChangePassword,
            _ => return None,
        })
    }
}

/// What the state machine needs to know about the user and this login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UserState {
    /// Admin flag, or the password is older than `password.expiry`.
    pub must_change_password: bool,
    /// The email is verified.
    pub email_verified: bool,
    /// The phone is verified.
    pub phone_verified: bool,
    /// The user has at least one MFA method.
    pub has_mfa: bool,
    /// An admin exempted the user from MFA enforcement.
    pub mfa_exempt: bool,
    /// The MFA grace period has not run out yet.
    pub in_grace_period: bool,
    /// A second factor was proved during this login.
    pub mfa_proven: bool,
    /// The request carried a valid trusted-device token.
    pub trusted_device: bool,
}

/// The configured rules that decide the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// `signup.verification`.
    pub verification: Verification,
    /// `mfa.enforcement`.
    pub mfa: MfaEnforcement,
}

/// What comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Answer this challenge.
    Challenge(ChallengeName),
    /// Issue tokens and create a session.
    Tokens,
}

/// The first rule that holds, in the order of docs/api.md §2.1, with one rule ahead of them: a
/// user who has MFA proves the second factor before anything else, so that a password alone
/// never reaches FORCE_CHANGE_PASSWORD (which would set a new password and revoke the owner's
/// sessions) or VERIFY_PHONE (which can name a new phone number).
pub(crate) fn next_step(u: &UserState, p: &Policy) -> Step {
    use ChallengeName::*;
    let wants_email = matches!(p.verification, Verification::Email | Verification::Both);
    let wants_phone = matches!(p.verification, Verification::Phone | Verification::Both);
    let mfa_due = p.mfa != MfaEnforcement::Off && u.has_mfa && !u.mfa_proven && !u.trusted_device;
    if mfa_due {
        Step::Challenge(MfaRequired)
    } else if u.must_change_password {
        Step::Challenge(ForceChangePassword)
    } else if wants_email && !u.email_verified {
        Step::Challenge(VerifyEmail)
    } else if wants_phone && !u.phone_verified {
        Step::Challenge(VerifyPhone)
    } else if p.mfa == MfaEnforcement::Required && !u.has_mfa && !u.mfa_exempt && !u.in_grace_period
    {
        Step::Challenge(MfaSetupRequired)
    } else {
        Step::Tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChallengeName::*;

    /// Every combination of the eight flags under every policy: the expected step is
    /// recomputed from the contract's rule list, written independently as a table of rules.
    #[test]
    fn exhaustive_table() {
        let verifications = [
            Verification::None,
            Verification::Email,
            Verification::Phone,
            Verification::Both,
        ];
        let enforcements = [
            MfaEnforcement::Off,
            MfaEnforcement::Optional,
            MfaEnforcement::Required,
        ];
        let mut seen = std::collections::HashSet::new();
        for bits in 0u16..256 {
            let b = |i: u16| bits & (1 << i) != 0;
            let u = UserState {
                must_change_password: b(0),
                email_verified: b(1),
                phone_verified: b(2),
                has_mfa: b(3),
                mfa_exempt: b(4),
                in_grace_period: b(5),
                mfa_proven: b(6),
                trusted_device: b(7),
            };
            for v in verifications {
                for m in enforcements {
                    let p = Policy {
                        verification: v,
                        mfa: m,
                    };
                    let rules: [(bool, ChallengeName); 5] = [
                        (
                            m != MfaEnforcement::Off
                                && u.has_mfa
                                && !(u.mfa_proven || u.trusted_device),
                            MfaRequired,
                        ),
                        (u.must_change_password, ForceChangePassword),
                        (
                            (v == Verification::Email || v == Verification::Both)
                                && !u.email_verified,
                            VerifyEmail,
                        ),
                        (
                            (v == Verification::Phone || v == Verification::Both)
                                && !u.phone_verified,
                            VerifyPhone,
                        ),
                        (
                            m == MfaEnforcement::Required
                                && !(u.has_mfa || u.mfa_exempt || u.in_grace_period),
                            MfaSetupRequired,
                        ),
                    ];
                    let want = rules
                        .iter()
                        .find(|(holds, _)| *holds)
                        .map(|(_, c)| Step::Challenge(*c))
                        .unwrap_or(Step::Tokens);
                    let got = next_step(&u, &p);
                    assert_eq!(got, want, "{u:?} {p:?}");
                    seen.insert(format!("{got:?}"));
                }
            }
        }
        assert_eq!(seen.len(), 6, "every outcome is reachable: {seen:?}");
    }

    #[test]
    fn named_cases() {
        let p = Policy {
            verification: Verification::Email,
            mfa: MfaEnforcement::Optional,
        };
        let fresh = UserState::default();
        assert_eq!(next_step(&fresh, &p), Step::Challenge(VerifyEmail));
        let verified = UserState {
            email_verified: true,
            ..fresh
        };
        assert_eq!(next_step(&verified, &p), Step::Tokens);
        let forced = UserState {
            must_change_password: true,
            ..verified
        };
        assert_eq!(next_step(&forced, &p), Step::Challenge(ForceChangePassword));
        // An MFA user proves the second factor before a forced change.
        let forced_mfa = UserState {
            has_mfa: true,
            ..forced
        };
        assert_eq!(next_step(&forced_mfa, &p), Step::Challenge(MfaRequired));
        let proven = UserState {
            mfa_proven: true,
            ..forced_mfa
        };
        assert_eq!(next_step(&proven, &p), Step::Challenge(ForceChangePassword));
        let mfa = UserState {
            has_mfa: true,
            ..verified
        };
        assert_eq!(next_step(&mfa, &p), Step::Challenge(MfaRequired));
        let trusted = UserState {
            trusted_device: true,
            ..mfa
        };
        assert_eq!(next_step(&trusted, &p), Step::Tokens);
        let req = Policy {
            mfa: MfaEnforcement::Required,
            ..p
        };
        assert_eq!(
            next_step(&verified, &req),
            Step::Challenge(MfaSetupRequired)
        );
        let grace = UserState {
            in_grace_period: true,
            ..verified
        };
        assert_eq!(next_step(&grace, &req), Step::Tokens);
        for n in [
            VerifyEmail,
            VerifyPhone,
            MfaSetupRequired,
            MfaRequired,
            ForceChangePassword,
        ] {
            assert_eq!(ChallengeName::parse(n.as_str()), Some(n));
        }
        assert_eq!(ChallengeName::parse("verify_email"), None);
    }
}
