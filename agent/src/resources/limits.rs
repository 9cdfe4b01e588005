//! The bounds on what one input and one object may be, and the linear
//! nesting check that runs before serde_yaml. Without them a 50 MB file or
//! one deeply nested document ties `tabbyctl apply` up for minutes and a
//! single oversized object is stored where no other Calico tool could
//! read it back.

use std::borrow::Cow;

/// The largest object any backend stores: etcd's default
/// `--max-request-bytes` (1.5 MiB), which is also the largest object a
/// Kubernetes API server (on that etcd) accepts. An object over it can
/// never move to etcd or Kubernetes, so no backend takes it.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// The largest input `tabbyctl apply/create/replace/delete -f` reads. It is
/// roomy (a `get -o yaml` of every IPAM block of a 5000-node cluster fits)
/// but keeps the parsed tree's memory bounded.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// The most resources one input may hold. One apply is one all-or-nothing
/// change with an undo; past this it stops being something to review, and
/// it should be split.
pub const MAX_RESOURCES: usize = 100_000;

/// serde_yaml's own recursion limit: a document nested deeper is refused
/// anyway, so refusing it before serde_yaml scans it loses nothing. The
/// point is that libyaml's scanner is quadratic in flow nesting (50k levels
/// took 22 s to reach its error); the check below is linear.
pub const MAX_NESTING: usize = 128;

/// How much of a long user-supplied value an error message echoes: enough
/// to recognise it, without repeating a megabyte.
const ECHO_CHARS: usize = 64;

/// `s` for an error message: as is if short, else its start and its length.
pub fn shorten(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(ECHO_CHARS) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &s[..cut], s.len())),
    }
}

/// The first document (1-based, as serde_yaml numbers them) nested deeper
/// than [`MAX_NESTING`]: its number, the line where it gets too deep, and
/// the byte offset where it starts (so the caller hands serde_yaml only the
/// documents before it). Uses granit-parser, whose scanner is linear in the
/// nesting depth. If it cannot read the input, it says nothing: serde_yaml
/// will report the syntax error itself.
pub(crate) fn too_deep(text: &str) -> Option<TooDeep> {
    use granit_parser::{Event, Parser};
    let mut document = 0;
    let mut depth = 0usize;
    let mut start = 0;
    for next in Parser::new_from_str(text) {
        let Ok((event, span)) = next else {
            return None;
        };
        match event {
            Event::DocumentStart(..) => {
                document += 1;
                depth = 0;
                start = span.start.byte_offset().unwrap_or_else(|| {
                    text.char_indices()
                        .nth(span.start.index())
                        .map_or(text.len(), |(b, _)| b)
                });
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(TooDeep {
                        document: document.max(1),
                        line: span.start.line(),
                        start,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::StreamEnd => break,
            _ => {}
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooDeep {
    pub document: usize,
    pub line: usize,
    /// Byte offset of the document's start.
    pub start: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_short_values_and_cuts_long_ones() {
        assert_eq!(shorten("eth0"), "eth0");
        let long = "a".repeat(1 << 20);
        let s = shorten(&long);
        assert!(s.len() < 100, "{s}");
        assert!(s.ends_with("(1048576 bytes)"), "{s}");
        // Never cuts inside a character.
        let wide = "é".repeat(100);
        assert!(shorten(&wide).starts_with(&"é".repeat(64)));
    }

    #[test]
    fn nesting_is_measured_per_document_and_linearly() {
        let ok = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(too_deep(&ok), None);
        let deep = format!("a: {}1{}\n", "{a: ".repeat(50_000), "}".repeat(50_000));
        let t = std::time::Instant::now();
        let two = format!("a: 1\n---\n{deep}");
        let d = too_deep(&two).unwrap();
        assert_eq!((d.document, d.line, &two[..d.start]), (2, 3, "a: 1\n"));
        assert!(t.elapsed().as_secs() < 2, "{:?}", t.elapsed());
        let block = (0..200).fold(String::new(), |s, i| s + &" ".repeat(i) + "a:\n");
        assert!(too_deep(&block).is_some());
        // Unreadable input is left to serde_yaml's error.
        assert_eq!(too_deep("a: [\n---\n"), None);
    }
}
