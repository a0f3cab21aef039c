//! Diagnostics without the Rust backtrace that `tf_provider::Diagnostic::new`
//! appends whenever `RUST_BACKTRACE` is set: people read these in their
//! terminal, and a stack of provider internals only hides the message.

use std::borrow::Cow;

use tf_provider::{AttributePath, Diagnostic, Diagnostics};

pub trait Report {
    /// An error about one attribute.
    fn fail(
        &mut self,
        summary: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
        attribute: AttributePath,
    );

    /// An error about one attribute, said in one line.
    fn fail_short(&mut self, summary: impl Into<Cow<'static, str>>, attribute: AttributePath) {
        self.fail(summary, "", attribute);
    }

    /// An error about the resource as a whole.
    fn fail_root(
        &mut self,
        summary: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) {
        self.fail(summary, detail, AttributePath::root());
    }

    /// A warning about one attribute.
    fn warn(
        &mut self,
        summary: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
        attribute: AttributePath,
    );

    /// A warning about the resource as a whole.
    fn warn_root(
        &mut self,
        summary: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) {
        self.warn(summary, detail, AttributePath::root());
    }
}

impl Report for Diagnostics {
    fn fail(
        &mut self,
        summary: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
        attribute: AttributePath,
    ) {
        self.add_error(Diagnostic {
            summary: summary.into(),
            detail: detail.into(),
            attribute,
        });
    }

    fn warn(
        &mut self,
        summary: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
        attribute: AttributePath,
    ) {
        self.add_warning(Diagnostic {
            summary: summary.into(),
            detail: detail.into(),
            attribute,
        });
    }
}
