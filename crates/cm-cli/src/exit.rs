//! Exit codes: 0 success; 1 differences or incomplete work; 2 usage error or unusable input.

use std::fmt;

/// The exit code an outcome or error of cm-core ends a tool with.
pub trait ExitStatus {
    /// 0, 1 or 2 (see the module).
    fn exit_code(&self) -> u8;
}

/// An error that carries its exit code (for what a binary decides itself).
#[derive(Debug)]
pub struct Fail {
    /// The exit code.
    pub code: u8,
    /// The one-line message.
    pub message: String,
}

impl Fail {
    /// Exit 2: a usage error or an input that cannot be used.
    pub fn usage(message: impl fmt::Display) -> anyhow::Error {
        Fail {
            code: 2,
            message: message.to_string(),
        }
        .into()
    }
    /// Exit 1: something differs or is incomplete.
    pub fn incomplete(message: impl fmt::Display) -> anyhow::Error {
        Fail {
            code: 1,
            message: message.to_string(),
        }
        .into()
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

impl ExitStatus for Fail {
    fn exit_code(&self) -> u8 {
        self.code
    }
}

/// Every error cm-core returns is unusable input for the tool that got it: exit 2.
macro_rules! unusable_input {
    ($($t:ty),* $(,)?) => {
        $(impl ExitStatus for $t {
            fn exit_code(&self) -> u8 { 2 }
        })*
        impl ExitStatus for cm_core::systemd::SystemdError {
            fn exit_code(&self) -> u8 {
                u8::try_from(cm_core::systemd::SystemdError::exit_code(self)).unwrap_or(2)
            }
        }
        /// The exit code of an error that ended a run: its own ([`ExitStatus`]) when it is
        /// one of cm-core's or a [`Fail`], else 2.
        pub fn code_of(e: &anyhow::Error) -> u8 {
            if let Some(f) = e.downcast_ref::<Fail>() {
                return f.exit_code();
            }
            $(if let Some(x) = e.downcast_ref::<$t>() {
                return <$t as ExitStatus>::exit_code(x);
            })*
            if let Some(x) = e.downcast_ref::<cm_core::systemd::SystemdError>() {
                return <cm_core::systemd::SystemdError as ExitStatus>::exit_code(x);
            }
            2
        }
    };
}

unusable_input!(
    cm_core::checks::CheckError,
    cm_core::tree::TreeError,
    cm_core::manifest::ManifestError,
    cm_core::owners::OwnerMapError,
    cm_core::ini::IniError,
    cm_core::params::ParamsError,
    cm_core::envfile::PlanError,
    cm_core::envfile::WriteError,
    cm_core::dotenv::ReadError,
    cm_core::envapply::InputError,
);

impl ExitStatus for cm_core::checks::Outcome {
    fn exit_code(&self) -> u8 {
        if self.ok() {
            0
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_keeps_its_code_and_others_are_unusable_input() {
        assert_eq!(code_of(&Fail::incomplete("x")), 1);
        assert_eq!(code_of(&Fail::usage("x")), 2);
        assert_eq!(code_of(&anyhow::anyhow!("x")), 2);
        assert_eq!(code_of(&Fail::incomplete("x").context("more")), 1);
    }
}
