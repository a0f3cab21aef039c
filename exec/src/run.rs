//! Replacing this process with the container's command, the values in its environment.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use crate::secret::Values;
use crate::settings::is_setting;
use crate::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, PREFIX};

/// Execs `command` with this process's environment, less the wrapper's own settings, plus
/// `values` (a value replaces an inherited variable of the same name). The command looks
/// `PATH` up as a shell would and keeps this process's PID, so it receives the
/// container's signals directly. Returns only when the exec failed, with the shell's
/// exit code for that failure.
pub(crate) fn exec(command: Vec<OsString>, values: Values) -> ExitCode {
    let mut words = command.into_iter();
    let Some(program) = words.next() else {
        eprintln!("{PREFIX} no command given");
        return ExitCode::from(crate::EXIT_USAGE);
    };
    let mut child = Command::new(&program);
    child.args(words).env_clear();
    child.envs(std::env::vars_os().filter(|(name, _)| !is_setting(name)));
    child.envs(values.expose_all());
    // Wipe this copy now; the command's copy lives on only in the new program's memory.
    drop(values);

    let error = child.exec();
    let program = program.to_string_lossy();
    if error.kind() == ErrorKind::NotFound {
        eprintln!(
            "{PREFIX} command {program:?} not found; check the container's command and its PATH"
        );
        ExitCode::from(EXIT_NOT_FOUND)
    } else {
        eprintln!(
            "{PREFIX} command {program:?} cannot be executed: {}",
            crate::sys::describe_io(&error)
        );
        ExitCode::from(EXIT_NOT_EXECUTABLE)
    }
}
