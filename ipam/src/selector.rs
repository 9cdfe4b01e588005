//! Calico's label selector syntax, as IPPool.nodeSelector (and later
//! BGPPeer selectors) use it, parsed once and evaluated against a node's
//! labels.
//!
//! Grammar (lowest precedence first):
//!   or    := and ( "||" and )*
//!   and   := unary ( "&&" unary )*
//!   unary := "!" unary | "(" or ")" | term
//!   term  := "all()" | "has(" key ")" | key op value
//!   op    := "==" | "!=" | "in" | "not in" | "contains" | "starts with" | "ends with"
//! `!=` and `not in` are true when the label is absent, as in Calico.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {input:?} at character {position}: {message}")]
pub struct SelectorError {
    pub input: String,
    pub position: usize,
    pub message: String,
}

/// Deeper nesting is refused rather than risking the stack on hostile input.
const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    All,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Expr);

impl Selector {
    pub fn all() -> Selector {
        Selector(Expr::All)
    }

    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut p = Parser {
            input: s,
            chars: s.chars().collect(),
            pos: 0,
            depth: 0,
        };
        p.skip_ws();
        if p.pos == p.chars.len() {
            return Ok(Selector::all());
        }
        let e = p.or()?;
        p.skip_ws();
        if p.pos != p.chars.len() {
            return Err(p.err("expected '&&', '||' or the end of the selector"));
        }
        Ok(Selector(e))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        eval(&self.0, labels)
    }
}

fn eval(e: &Expr, l: &BTreeMap<String, String>) -> bool {
    let get = |k: &String| l.get(k).map(String::as_str);
    match e {
        Expr::All => true,
        Expr::Has(k) => l.contains_key(k),
        Expr::Eq(k, v) => get(k) == Some(v.as_str()),
        Expr::Ne(k, v) => get(k) != Some(v.as_str()),
        Expr::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Expr::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Expr::Contains(k, v) => get(k).is_some_and(|x| x.contains(v.as_str())),
        Expr::StartsWith(k, v) => get(k).is_some_and(|x| x.starts_with(v.as_str())),
        Expr::EndsWith(k, v) => get(k).is_some_and(|x| x.ends_with(v.as_str())),
        Expr::Not(x) => !eval(x, l),
        Expr::And(a, b) => eval(a, l) && eval(b, l),
        Expr::Or(a, b) => eval(a, l) || eval(b, l),
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }
}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

impl Parser<'_> {
    fn err(&self, message: &str) -> SelectorError {
        SelectorError {
            input: self.input.to_string(),
            position: self.pos,
            message: message.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// Consumes `word` if it comes next (after whitespace). Alphabetic words
    /// must end at a non-key character, so `in` doesn't match `inside`.
    fn eat(&mut self, word: &str) -> bool {
        self.skip_ws();
        let w: Vec<char> = word.chars().collect();
        let end = self.pos + w.len();
        if self.chars.get(self.pos..end) != Some(&w[..]) {
            return false;
        }
        let alpha = w.last().is_some_and(|c| c.is_ascii_alphabetic());
        if alpha && self.chars.get(end).is_some_and(|c| is_key_char(*c)) {
            return false;
        }
        self.pos = end;
        true
    }

    fn enter(&mut self) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("selector nested too deeply (more than 100 levels)"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        self.enter()?;
        let mut e = self.and()?;
        while self.eat("||") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut e = self.unary()?;
        while self.eat("&&") {
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        if self.eat("!") {
            self.enter()?;
            let e = Expr::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return Err(self.err("expected ')'"));
            }
            return Ok(e);
        }
        self.term()
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|c| is_key_char(*c)) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err("expected a label key, 'all()', 'has(', '!' or '('"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let q = match self.chars.get(self.pos) {
            Some(c @ ('\'' | '"')) => *c,
            _ => return Err(self.err("expected a quoted value ('...' or \"...\")")),
        };
        let start = self.pos;
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.chars.get(self.pos) {
                None => {
                    self.pos = start;
                    return Err(self.err("unterminated string"));
                }
                Some(c) if *c == q => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(*c);
                    self.pos += 1;
                }
            }
        }
    }

    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        if !self.eat("{") {
            return Err(self.err("expected '{' to start a set of values"));
        }
        let mut vs = Vec::new();
        if self.eat("}") {
            return Ok(vs);
        }
        loop {
            vs.push(self.string()?);
            if self.eat("}") {
                return Ok(vs);
            }
            if !self.eat(",") {
                return Err(self.err("expected ',' or '}'"));
            }
        }
    }

    fn term(&mut self) -> Result<Expr, SelectorError> {
        if self.eat("all()") {
            return Ok(Expr::All);
        }
        if self.eat("has(") {
            let k = self.key()?;
            if !self.eat(")") {
                return Err(self.err("expected ')' after has(key"));
            }
            return Ok(Expr::Has(k));
        }
        let k = self.key()?;
        if self.eat("==") {
            return Ok(Expr::Eq(k, self.string()?));
        }
        if self.eat("!=") {
            return Ok(Expr::Ne(k, self.string()?));
        }
        if self.eat("in") {
            return Ok(Expr::In(k, self.set()?));
        }
        if self.eat("not") {
            if !self.eat("in") {
                return Err(self.err("expected 'in' after 'not'"));
            }
            return Ok(Expr::NotIn(k, self.set()?));
        }
        if self.eat("contains") {
            return Ok(Expr::Contains(k, self.string()?));
        }
        if self.eat("starts") {
            if !self.eat("with") {
                return Err(self.err("expected 'with' after 'starts'"));
            }
            return Ok(Expr::StartsWith(k, self.string()?));
        }
        if self.eat("ends") {
            if !self.eat("with") {
                return Err(self.err("expected 'with' after 'ends'"));
            }
            return Ok(Expr::EndsWith(k, self.string()?));
        }
        Err(self.err(
            "expected '==', '!=', 'in', 'not in', 'contains', 'starts with' or 'ends with' after label key",
        ))
    }
}

/// Values are written with the quote that doesn't occur in them; a value
/// holding both kinds cannot be written in Calico's syntax and can't have
/// been parsed either.
fn quote(v: &str) -> String {
    if v.contains('\'') {
        format!("\"{v}\"")
    } else {
        format!("'{v}'")
    }
}

fn set(vs: &[String]) -> String {
    vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", quote(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", quote(v)),
            Expr::In(k, vs) => write!(f, "{k} in {{{}}}", set(vs)),
            Expr::NotIn(k, vs) => write!(f, "{k} not in {{{}}}", set(vs)),
            Expr::Contains(k, v) => write!(f, "{k} contains {}", quote(v)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", quote(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", quote(v)),
            Expr::Not(x) => write!(f, "!({x})"),
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(sel: &str, kv: &[(&str, &str)]) -> bool {
        Selector::parse(sel)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(&labels(kv))
    }

    #[test]
    fn each_form_matches_and_misses() {
        assert!(m("all()", &[]));
        assert!(m("  ", &[]));
        assert!(m("rack == 'r1'", &[("rack", "r1")]));
        assert!(m("rack == \"r1\"", &[("rack", "r1")]));
        assert!(!m("rack == 'r1'", &[("rack", "r2")]));
        assert!(!m("rack == 'r1'", &[]));
        assert!(m("rack != 'r1'", &[]), "!= is true when the key is absent");
        assert!(!m("rack != 'r1'", &[("rack", "r1")]));
        assert!(m(
            "has(kubernetes.io/hostname)",
            &[("kubernetes.io/hostname", "a")]
        ));
        assert!(m("!has(x)", &[]));
        assert!(m("zone in {'a', 'b'}", &[("zone", "b")]));
        assert!(!m("zone in {'a','b'}", &[("zone", "c")]));
        assert!(m("zone not in {'a'}", &[]), "not in is true when absent");
        assert!(!m("zone not in {'a'}", &[("zone", "a")]));
        assert!(m("name contains 'eb'", &[("name", "web-1")]));
        assert!(m("name starts with 'we'", &[("name", "web-1")]));
        assert!(m("name ends with '-1'", &[("name", "web-1")]));
        assert!(!m("name ends with '-1'", &[]));
        assert!(!m("zone in {}", &[("zone", "a")]));
    }

    #[test]
    fn precedence_parentheses_and_negation() {
        let s = "a == '1' || b == '2' && c == '3'";
        assert!(m(s, &[("a", "1")]));
        assert!(!m(s, &[("b", "2")]));
        assert!(m(s, &[("b", "2"), ("c", "3")]));
        let s = "(a == '1' || b == '2') && c == '3'";
        assert!(!m(s, &[("a", "1")]));
        assert!(m(s, &[("a", "1"), ("c", "3")]));
        assert!(m("!(a == '1' && b == '2')", &[("a", "1")]));
        assert!(!m("!!has(a) && !has(b)", &[("b", "x")]));
    }

    #[test]
    fn display_parses_back_to_the_same_selector() {
        for s in [
            "all()",
            "a == 'x' || b != \"it's\" && !has(c)",
            "k.io/z in {'a', 'b'} && k not in {}",
            "n contains 'x' || n starts with 'y' || n ends with 'z'",
            "!(a == '1' || (b == '2' && c == '3'))",
        ] {
            let a = Selector::parse(s).unwrap();
            let b = Selector::parse(&a.to_string()).unwrap();
            assert_eq!(a, b, "{s} -> {a}");
        }
    }

    #[test]
    fn bad_selectors_say_where_and_what() {
        for (s, pos, msg) in [
            ("rack = 'a'", 5, "expected '=='"),
            ("rack == 'a", 8, "unterminated string"),
            ("(a == 'b'", 9, "expected ')'"),
            ("a == 'b' &&", 11, "expected a label key"),
            ("a == 'b' c", 9, "expected '&&', '||'"),
            ("a in {'x' 'y'}", 10, "expected ',' or '}'"),
            ("a not 'x'", 6, "expected 'in' after 'not'"),
            ("has(a", 5, "expected ')' after has"),
            ("== 'a'", 0, "expected a label key"),
            ("a == b", 5, "expected a quoted value"),
        ] {
            let e = Selector::parse(s).unwrap_err();
            assert_eq!(e.position, pos, "{s}: {e}");
            assert!(e.message.contains(msg), "{s}: {e}");
            assert!(e.to_string().contains(&format!("{s:?}")));
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let deep = "(".repeat(10_000) + "all()" + &")".repeat(10_000);
        assert!(Selector::parse(&deep)
            .unwrap_err()
            .message
            .contains("nested"));
        assert!(Selector::parse(&"!".repeat(10_000)).is_err());
        let samples = [
            "a == 'x' || b != \"y\" && !has(c)",
            "k.io/z in {'a', 'b'} && k not in {'é'}",
            "n starts with 'x' || (n ends with 'ü' && all())",
        ];
        let mut seed = 0x9e3779b97f4a7c15u64;
        for s in samples {
            for (i, _) in s.char_indices() {
                let _ = Selector::parse(&s[..i]);
            }
            let bytes = s.as_bytes();
            for _ in 0..2000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut b = bytes.to_vec();
                let at = (seed % b.len() as u64) as usize;
                b[at] = (seed >> 32) as u8;
                let text = String::from_utf8_lossy(&b);
                let _ = Selector::parse(&text).map(|x| x.matches(&labels(&[("a", "x")])));
            }
        }
    }
}
