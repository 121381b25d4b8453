//! Topic patterns for [`subscribe_pattern`](super::Consumer::subscribe_pattern):
//! a small regular-expression matcher, so the crate needs no regex
//! dependency for matching a few hundred topic names now and then.
//!
//! Supported: literals and `\`-escapes, `.`, classes `[a-z0-9_]` / `[^...]`,
//! `\d \w \s \D \W \S`, groups `(...)` and `(?:...)`, alternation `|`,
//! quantifiers `* + ? {n} {n,} {n,m}` (lazy forms accepted), anchors `^ $`.
//! A topic matches when the whole name matches, as Java's
//! `Pattern.matcher(topic).matches()`.

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    Class {
        items: Vec<ClassItem>,
        negated: bool,
    },
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Debug, Clone)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

impl ClassItem {
    fn matches(&self, c: char) -> bool {
        match *self {
            ClassItem::Range(a, b) => a <= c && c <= b,
            ClassItem::Digit(neg) => c.is_ascii_digit() != neg,
            ClassItem::Word(neg) => (c.is_ascii_alphanumeric() || c == '_') != neg,
            ClassItem::Space(neg) => c.is_whitespace() != neg,
        }
    }
}

/// A compiled topic pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    source: String,
    root: Node,
}

/// Matching gives up (no match) after this many steps: topic names are
/// short, so only a pathological pattern gets near it.
const STEP_LIMIT: usize = 1_000_000;

/// Groups nest at most this deep: parsing recurses once per group.
const MAX_NESTING: usize = 100;

/// Matching gives up (no match) when its recursion gets this deep (one
/// level per pattern element matched along the way, plus one per
/// repetition), far below what a thread's stack holds.
const DEPTH_LIMIT: usize = 1_000;

/// The counters that bound one match.
struct Budget {
    steps: usize,
    depth: usize,
}

impl Pattern {
    /// Compiles `source`; errors name the position of the problem.
    pub(crate) fn new(source: &str) -> Result<Pattern> {
        let chars: Vec<char> = source.chars().collect();
        let mut p = Parser {
            chars: &chars,
            pos: 0,
            depth: 0,
        };
        let root = p.alternation()?;
        if p.pos != chars.len() {
            return Err(p.error("unbalanced `)`"));
        }
        Ok(Pattern {
            source: source.to_owned(),
            root,
        })
    }

    /// The pattern as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let mut budget = Budget { steps: 0, depth: 0 };
        let end = chars.len();
        matches(&self.root, &chars, 0, &mut budget, &mut |p, _| p == end)
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    /// Groups open around `pos`.
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> Error {
        Error::invalid_argument(format!(
            "topic pattern `{}`: {what} at position {}",
            self.chars.iter().collect::<String>(),
            self.pos
        ))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Result<Node> {
        let mut alts = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Concat(Vec::new()))
        } else {
            Node::Alt(alts)
        })
    }

    fn concat(&mut self) -> Result<Node> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let start = self.pos;
                match self.braces() {
                    Some(mm) => mm,
                    None => {
                        self.pos = start;
                        return Err(self.error("malformed `{n,m}` quantifier"));
                    }
                }
            }
            _ => return Ok(atom),
        };
        self.pos += 1; // the quantifier, or the closing brace
                       // Lazy and possessive suffixes do not change a whole-name match.
        if matches!(self.peek(), Some('?') | Some('+')) {
            self.pos += 1;
        }
        if matches!(atom, Node::Start | Node::End) {
            return Err(self.error("quantifier after an anchor"));
        }
        if max.is_some_and(|m| m < min) {
            return Err(self.error("quantifier maximum below its minimum"));
        }
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
        })
    }

    /// Parses `{n}`, `{n,}` or `{n,m}`, leaving `pos` on the closing brace.
    fn braces(&mut self) -> Option<(u32, Option<u32>)> {
        self.pos += 1; // {
        let num = |p: &mut Self| -> Option<u32> {
            let start = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            p.chars[start..p.pos]
                .iter()
                .collect::<String>()
                .parse()
                .ok()
        };
        let min = num(self)?;
        let max = if self.peek() == Some(',') {
            self.pos += 1;
            if self.peek() == Some('}') {
                None
            } else {
                Some(num(self)?)
            }
        } else {
            Some(min)
        };
        (self.peek() == Some('}')).then_some((min, max))
    }

    fn atom(&mut self) -> Result<Node> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end"));
        };
        self.pos += 1;
        Ok(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.depth >= MAX_NESTING {
                    return Err(self.error(&format!("groups nested more than {MAX_NESTING} deep")));
                }
                if self.chars.get(self.pos..self.pos + 2) == Some(&['?', ':']) {
                    self.pos += 2;
                } else if self.peek() == Some('?') {
                    return Err(self.error("only `(?:...)` groups are supported"));
                }
                self.depth += 1;
                let inner = self.alternation()?;
                self.depth -= 1;
                if self.peek() != Some(')') {
                    return Err(self.error("missing `)`"));
                }
                self.pos += 1;
                inner
            }
            '[' => self.class()?,
            '\\' => match self.escape()? {
                Escaped::Char(c) => Node::Char(c),
                Escaped::Item(i) => Node::Class {
                    items: vec![i],
                    negated: false,
                },
            },
            '*' | '+' | '?' | '{' => return Err(self.error("quantifier with nothing to repeat")),
            c => Node::Char(c),
        })
    }

    fn escape(&mut self) -> Result<Escaped> {
        let Some(c) = self.peek() else {
            return Err(self.error("`\\` at the end"));
        };
        self.pos += 1;
        Ok(match c {
            'd' => Escaped::Item(ClassItem::Digit(false)),
            'D' => Escaped::Item(ClassItem::Digit(true)),
            'w' => Escaped::Item(ClassItem::Word(false)),
            'W' => Escaped::Item(ClassItem::Word(true)),
            's' => Escaped::Item(ClassItem::Space(false)),
            'S' => Escaped::Item(ClassItem::Space(true)),
            't' => Escaped::Char('\t'),
            'n' => Escaped::Char('\n'),
            c if c.is_ascii_alphanumeric() => {
                return Err(self.error(&format!("unsupported escape `\\{c}`")))
            }
            c => Escaped::Char(c),
        })
    }

    fn class(&mut self) -> Result<Node> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("missing `]`"));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            self.pos += 1;
            let lo = if c == '\\' {
                match self.escape()? {
                    Escaped::Char(c) => c,
                    Escaped::Item(i) => {
                        items.push(i);
                        continue;
                    }
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let Some(mut hi) = self.peek() else {
                    return Err(self.error("missing `]`"));
                };
                self.pos += 1;
                if hi == '\\' {
                    match self.escape()? {
                        Escaped::Char(c) => hi = c,
                        Escaped::Item(_) => return Err(self.error("class shorthand in a range")),
                    }
                }
                if hi < lo {
                    return Err(self.error("range out of order"));
                }
                items.push(ClassItem::Range(lo, hi));
            } else {
                items.push(ClassItem::Range(lo, lo));
            }
        }
        Ok(Node::Class { items, negated })
    }
}

enum Escaped {
    Char(char),
    Item(ClassItem),
}

/// Matches `node` at `pos`, then calls `k` with each possible end position
/// until it returns `true`.
fn matches(
    node: &Node,
    text: &[char],
    pos: usize,
    steps: &mut Budget,
    k: &mut dyn FnMut(usize, &mut Budget) -> bool,
) -> bool {
    steps.steps += 1;
    if steps.steps > STEP_LIMIT || steps.depth >= DEPTH_LIMIT {
        return false;
    }
    steps.depth += 1;
    let marker = 0u8;
    if steps.depth == 1 || steps.depth == 501 {
        eprintln!(
            "DEPTH {} ADDR {}",
            steps.depth, &marker as *const u8 as usize
        );
    }
    let found = match_node(node, text, pos, steps, k);
    steps.depth -= 1;
    found
}

fn match_node(
    node: &Node,
    text: &[char],
    pos: usize,
    steps: &mut Budget,
    k: &mut dyn FnMut(usize, &mut Budget) -> bool,
) -> bool {
    match node {
        Node::Char(c) => text.get(pos) == Some(c) && k(pos + 1, steps),
        Node::Any => pos < text.len() && text[pos] != '\n' && k(pos + 1, steps),
        Node::Class { items, negated } => match text.get(pos) {
            Some(&c) if items.iter().any(|i| i.matches(c)) != *negated => k(pos + 1, steps),
            _ => false,
        },
        Node::Start => pos == 0 && k(pos, steps),
        Node::End => pos == text.len() && k(pos, steps),
        Node::Concat(items) => concat(items, text, pos, steps, k),
        Node::Alt(alts) => alts.iter().any(|a| matches(a, text, pos, steps, k)),
        Node::Repeat { node, min, max } => repeat(node, *min, *max, 0, text, pos, steps, k),
    }
}

fn concat(
    items: &[Node],
    text: &[char],
    pos: usize,
    steps: &mut Budget,
    k: &mut dyn FnMut(usize, &mut Budget) -> bool,
) -> bool {
    match items.split_first() {
        None => k(pos, steps),
        Some((first, rest)) => matches(first, text, pos, steps, &mut |p, s| {
            concat(rest, text, p, s, k)
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn repeat(
    node: &Node,
    min: u32,
    max: Option<u32>,
    count: u32,
    text: &[char],
    pos: usize,
    steps: &mut Budget,
    k: &mut dyn FnMut(usize, &mut Budget) -> bool,
) -> bool {
    // Greedy: one more iteration first (if allowed and it consumes input),
    // then stop here.
    if max.map_or(true, |m| count < m) {
        let more = matches(node, text, pos, steps, &mut |p, s| {
            // An iteration that consumed nothing cannot lead anywhere new.
            p != pos && repeat(node, min, max, count + 1, text, p, s, k)
        });
        if more {
            return true;
        }
        if count < min {
            // The remaining required iterations may match empty.
            return matches(node, text, pos, steps, &mut |p, s| {
                p == pos && repeat(node, min, max, min, text, p, s, k)
            });
        }
    }
    count >= min && k(pos, steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::new(p).unwrap().matches(t)
    }

    #[test]
    fn whole_name_semantics() {
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders-eu"));
        assert!(m("orders.*", "orders-eu"));
        assert!(m("orders\\..*", "orders.eu"));
        assert!(!m("orders\\..*", "orders-eu"));
        assert!(m("^logs-[0-9]+$", "logs-42"));
        assert!(!m("logs-[0-9]+", "logs-"));
        assert!(m("(a|bc)+d", "abcad"));
        assert!(m("x{2,3}", "xxx") && !m("x{2,3}", "x") && !m("x{2,3}", "xxxx"));
        assert!(m("x{2}y?", "xx") && m("x{2,}", "xxxxx"));
        assert!(m("[^_].*", "topic") && !m("[^_].*", "__consumer_offsets"));
        assert!(m("\\w+-\\d", "ab_c-7") && !m("\\w+-\\d", "ab.c-7"));
        assert!(m("(?:t1|t2)", "t2"));
        assert!(m("a*?b", "aaab"));
        assert!(m("(a*)*b", "aaab"));
        assert!(m("[a-c.-]+", "a.b-c"));
        assert!(m("", ""));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in [
            "(a", "a)", "[abc", "*a", "a{2", "\\q", "(?<n>a)", "[z-a]", "a{3,1}",
        ] {
            assert!(Pattern::new(p).is_err(), "{p}");
        }
    }

    #[test]
    fn pathological_patterns_terminate() {
        let p = Pattern::new("(a*)*(a*)*(a*)*c").unwrap();
        assert!(!p.matches(&"a".repeat(40)));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = Pattern::new(&deep).unwrap_err();
        assert!(e.to_string().contains("nested"), "{e}");
        let ok = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(Pattern::new(&ok).unwrap().matches("a"));
    }

    #[test]
    fn long_patterns_match_within_a_small_stack() {
        // Each optional element matches empty: the recursion is as deep as
        // the pattern is long. Run on a thread with a small stack.
        let p = Pattern::new(&"a?".repeat(200_000)).unwrap();
        let short = Pattern::new(&format!("{}b", "a?".repeat(100))).unwrap();
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                assert!(!p.matches("b"), "gives up instead of overflowing");
                assert!(short.matches("aab"));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
