//! `#[needs(tool, ...)]` on a test: when the build found a tool missing, the
//! test carries `#[ignore = "needs <what>"]`, so that libtest reports it as
//! ignored with the reason instead of as passed. The tools and where they are
//! looked for are in `agyn_test_support::tools`; the build script of this
//! crate looks, and reruns when one of the directories searched changes.
//!
//! On an rstest case, put it before the `#[case]` it concerns: rstest gives
//! the attributes written before a `#[case]` to that case alone.

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

include!(concat!(env!("OUT_DIR"), "/tools.rs"));

/// Marks a test ignored when one of the named tools is missing, e.g.
/// `#[needs(moto, bao)]`. Known tools: see `agyn_test_support::tools::TOOLS`.
#[proc_macro_attribute]
pub fn needs(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut missing: Vec<&str> = Vec::new();
    let mut named = 0;
    let mut want_name = true;
    for token in attr {
        match (&token, want_name) {
            (TokenTree::Ident(ident), true) => {
                let name = ident.to_string();
                let Some(&(_, present, what)) = TOOLS.iter().find(|(known, ..)| *known == name)
                else {
                    let known: Vec<&str> = TOOLS.iter().map(|(known, ..)| *known).collect();
                    let message = format!("unknown tool `{name}`; known: {}", known.join(", "));
                    return error(ident.span(), &message, item);
                };
                if !present && !missing.contains(&what) {
                    missing.push(what);
                }
                named += 1;
                want_name = false;
            }
            (TokenTree::Punct(punct), false) if punct.as_char() == ',' => want_name = true,
            _ => {
                return error(
                    token.span(),
                    "expected tool names, e.g. #[needs(bao)]",
                    item,
                );
            }
        }
    }
    if named == 0 {
        return error(
            Span::call_site(),
            "name the tools, e.g. #[needs(bao)]",
            item,
        );
    }
    if missing.is_empty() {
        return item;
    }
    let reason = format!("needs {}", missing.join(" and "));
    let ignore = TokenStream::from_iter([
        TokenTree::Ident(Ident::new("ignore", Span::call_site())),
        TokenTree::Punct(Punct::new('=', Spacing::Alone)),
        TokenTree::Literal(Literal::string(&reason)),
    ]);
    let mut out = TokenStream::from_iter([
        TokenTree::Punct(Punct::new('#', Spacing::Alone)),
        TokenTree::Group(Group::new(Delimiter::Bracket, ignore)),
    ]);
    out.extend(item);
    out
}

/// `compile_error!` at `span`, followed by the item unchanged, so that the
/// one mistake is the one error.
fn error(span: Span, message: &str, item: TokenStream) -> TokenStream {
    let mut out: TokenStream = format!("::core::compile_error!({message:?});")
        .parse()
        .expect("a compile_error! invocation");
    out = out
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect();
    out.extend(item);
    out
}
