//! Lossless edits of docker compose files.
//!
//! The file is read with saphyr-parser, whose events carry source positions; the
//! values that reach a service's `environment` are found on that tree (through
//! anchors, aliases and `<<` merges) and rewritten in place, byte for byte, never by
//! re-serialising YAML. serde_yaml is the independent second reading that checks
//! an edit changed exactly what it meant to.

use std::collections::{BTreeMap, HashMap};

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::envfile::{LineIndex, Pos, pos_at};

/// A compose file that can't be read or edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("{pos}: {message}")]
    Syntax { pos: Pos, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{pos}: {key} of service {service:?} can't be edited losslessly ({why}); edit it by hand")]
    Uneditable { pos: Pos, service: String, key: String, why: &'static str },
    #[error("verification failed: {0}; nothing was written")]
    Verify(String),
}

type NodeId = usize;

#[derive(Debug)]
struct Scalar {
    value: String,
    style: ScalarStyle,
    /// Byte offset of the scalar's first character (its quote, for quoted styles).
    start: usize,
}

#[derive(Debug)]
enum Node {
    Scalar(Scalar),
    Seq(Vec<NodeId>),
    Map(Vec<(NodeId, NodeId)>),
    Alias(NodeId),
}

/// Where a service's value for a key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A literal value written in the file.
    Literal(String),
    /// `${VAR}` or `$VAR`: filled in from the environment or `.env` by compose.
    Interpolated(String),
    /// `- KEY` or `KEY:` with no value: passed through from the environment.
    PassThrough,
    /// A YAML list or mapping where a string belongs (docker compose refuses it): the
    /// CRM's deployment document writes `JWT_SECRET: [SECURE_TOKEN]` as a placeholder.
    /// `item` is the one plain scalar of a one-item flow sequence, which `rotate` may
    /// replace with a quoted secret.
    NotScalar { kind: &'static str, item: Option<String> },
}

/// One key of one service's effective environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub service: String,
    pub key: String,
    pub source: Source,
    /// Where the value (or the bare key) is written.
    pub pos: Pos,
    /// The scalar that holds it; shared by every service that reaches it through an alias.
    node: NodeId,
    list_item: bool,
}

/// A literal occurrence of a target key outside any service's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    pub key: String,
    pub pos: Pos,
}

/// A parsed compose file.
pub struct ComposeFile {
    text: String,
    nodes: Vec<Node>,
    /// Byte offset where each node starts (its properties included).
    starts: Vec<usize>,
    root: Option<NodeId>,
    lines: LineIndex,
}

/// Result of planning a rotation on one compose file.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// The new file bytes.
    pub bytes: Vec<u8>,
    /// Keys rotated, with the services that receive them.
    pub rotated: BTreeMap<String, Vec<String>>,
    /// Keys that services take from the environment (interpolated or passed through).
    pub from_env: BTreeMap<String, Vec<String>>,
    /// Literal occurrences outside `environment`, left unchanged.
    pub strays: Vec<Stray>,
    /// Byte ranges replaced in the old text, with their new text; for masked diffs.
    pub edits: Vec<(std::ops::Range<usize>, String)>,
}

impl ComposeFile {
    pub fn parse(bytes: &[u8]) -> Result<ComposeFile, ComposeError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| {
                let pos = pos_at(std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""), e.valid_up_to());
                ComposeError::Invalid(format!("{pos}: file is not valid UTF-8"))
            })?
            .to_string();
        // saphyr rejects a closing `]`/`}` indented no deeper than its parent key, which
        // docker compose (go-yaml) and serde_yaml (libyaml) accept; such a file is read
        // from a copy with the bracket moved up, keeping every other character index.
        let mut copy: Option<Vec<char>> = None;
        for _ in 0..1000 {
            let parsed = match &copy {
                None => events(&text, &text),
                Some(chars) => events(&chars.iter().collect::<String>(), &text),
            };
            match parsed {
                Ok(b) => {
                    if b.docs > 1 {
                        return Err(ComposeError::Invalid("file holds more than one YAML document".into()));
                    }
                    let lines = LineIndex::new(&text);
                    return Ok(ComposeFile { root: b.root, nodes: b.nodes, starts: b.starts, text, lines });
                }
                Err(failed) => {
                    let chars = copy.get_or_insert_with(|| text.chars().collect());
                    if failed.message != "invalid indentation" || !lift_closing_bracket(chars, failed.index) {
                        let at = CharToByte::new(&text).byte(failed.index);
                        return Err(syntax_error(&text, at, &failed));
                    }
                }
            }
        }
        Err(ComposeError::Invalid("too many misplaced closing brackets".into()))
    }

    fn resolve(&self, mut id: NodeId) -> NodeId {
        while let Node::Alias(target) = self.nodes[id] {
            id = target;
        }
        id
    }

    fn scalar(&self, id: NodeId) -> Option<&Scalar> {
        match &self.nodes[self.resolve(id)] {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The pairs of a mapping with `<<` merges applied: own keys first, then each
    /// merged map in order, earlier ones winning, as YAML merge keys define.
    fn merged_pairs(&self, map: NodeId, depth: usize) -> Vec<(String, NodeId, NodeId)> {
        let Node::Map(pairs) = &self.nodes[self.resolve(map)] else { return Vec::new() };
        let mut out: Vec<(String, NodeId, NodeId)> = Vec::new();
        let mut merges = Vec::new();
        for &(k, v) in pairs {
            match self.scalar(k) {
                Some(s) if s.value == "<<" && s.style == ScalarStyle::Plain => merges.push(v),
                Some(s) => out.push((s.value.clone(), k, v)),
                None => {}
            }
        }
        if depth > 64 {
            return out;
        }
        for m in merges {
            let sources = match &self.nodes[self.resolve(m)] {
                Node::Seq(items) => items.clone(),
                _ => vec![m],
            };
            for src in sources {
                for (key, k, v) in self.merged_pairs(src, depth + 1) {
                    if !out.iter().any(|(existing, ..)| *existing == key) {
                        out.push((key, k, v));
                    }
                }
            }
        }
        out
    }

    fn get(&self, map: NodeId, key: &str) -> Option<NodeId> {
        self.merged_pairs(map, 0).into_iter().find(|(k, ..)| k == key).map(|(_, _, v)| v)
    }

    fn pos(&self, id: NodeId) -> Pos {
        let id = self.resolve(id);
        match &self.nodes[id] {
            Node::Scalar(s) => self.lines.pos(&self.text, s.start),
            _ => self.lines.pos(&self.text, self.starts[id]),
        }
    }

    /// Every service's environment, in file order.
    pub fn environment(&self) -> Vec<EnvVar> {
        let mut out = Vec::new();
        let Some(root) = self.root else { return out };
        let Some(services) = self.get(root, "services") else { return out };
        for (service, _, def) in self.merged_pairs(services, 0) {
            let Some(env) = self.get(def, "environment") else { continue };
            match &self.nodes[self.resolve(env)] {
                Node::Map(_) => {
                    for (key, k, v) in self.merged_pairs(env, 0) {
                        let v = self.resolve(v);
                        let Some(s) = self.scalar(v) else {
                            let (kind, item) = match &self.nodes[v] {
                                Node::Seq(items) => (
                                    "list",
                                    match items.as_slice() {
                                        [one] => self
                                            .scalar(*one)
                                            .filter(|s| s.style == ScalarStyle::Plain && !is_null(s))
                                            .map(|s| s.value.clone()),
                                        _ => None,
                                    },
                                ),
                                _ => ("mapping", None),
                            };
                            let source = Source::NotScalar { kind, item };
                            out.push(EnvVar {
                                service: service.clone(),
                                key,
                                source,
                                pos: self.pos(v),
                                node: v,
                                list_item: false,
                            });
                            continue;
                        };
                        let source = if is_null(s) {
                            Source::PassThrough
                        } else if is_interpolated(&s.value) {
                            Source::Interpolated(s.value.clone())
                        } else {
                            Source::Literal(s.value.clone())
                        };
                        let pos = if source == Source::PassThrough { self.pos(k) } else { self.pos(v) };
                        out.push(EnvVar { service: service.clone(), key, source, pos, node: v, list_item: false });
                    }
                }
                Node::Seq(items) => {
                    for &item in items {
                        let item = self.resolve(item);
                        let Some(s) = self.scalar(item) else { continue };
                        let (key, source) = match s.value.split_once('=') {
                            None => (s.value.clone(), Source::PassThrough),
                            Some((k, v)) if is_interpolated(v) => (k.to_string(), Source::Interpolated(v.to_string())),
                            Some((k, v)) => (k.to_string(), Source::Literal(v.to_string())),
                        };
                        out.push(EnvVar {
                            service: service.clone(),
                            key,
                            source,
                            pos: self.pos(item),
                            node: item,
                            list_item: true,
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Byte range of a one-item flow sequence of a plain scalar (`[SECURE_TOKEN]`), from
    /// its `[` to its `]`, checked character by character: the placeholder `rotate`
    /// replaces whole with a quoted secret.
    fn flow_sequence_range(&self, var: &EnvVar) -> Result<std::ops::Range<usize>, &'static str> {
        let Node::Seq(items) = &self.nodes[var.node] else { return Err("a mapping") };
        let [item] = items.as_slice() else { return Err("a list of more than one item") };
        let s = self
            .scalar(*item)
            .filter(|s| s.style == ScalarStyle::Plain)
            .ok_or("a list whose item is not a plain word")?;
        let open = skip_properties(&self.text, self.starts[var.node]);
        if !self.text[open..].starts_with('[') {
            return Err("a block list");
        }
        let blanks = |at: usize| at + self.text[at..].len() - self.text[at..].trim_start_matches([' ', '\t']).len();
        let item_at = blanks(open + 1);
        if item_at != s.start || !self.text[item_at..].starts_with(s.value.as_str()) {
            return Err("a list that spans lines or holds comments");
        }
        let close = blanks(item_at + s.value.len());
        if !self.text[close..].starts_with(']') {
            return Err("a list that spans lines or holds comments");
        }
        Ok(open..close + 1)
    }

    /// Byte range of the value text of a literal, checked to read back as the parser read it.
    fn value_range(&self, var: &EnvVar) -> Result<std::ops::Range<usize>, &'static str> {
        let s = self.scalar(var.node).expect("environment values are scalars");
        let start = skip_properties(&self.text, s.start);
        let (inner_start, quote) = match s.style {
            ScalarStyle::Plain => (start, None),
            ScalarStyle::SingleQuoted => (start + 1, Some('\'')),
            ScalarStyle::DoubleQuoted => (start + 1, Some('"')),
            _ => return Err("a block scalar"),
        };
        // The source text must equal the parsed value: no escapes, folding or doubled quotes.
        let raw = self.text.get(inner_start..inner_start + s.value.len()).ok_or("value runs past the file")?;
        if raw != s.value {
            return Err("the value uses escapes, doubled quotes or spans lines");
        }
        if let Some(q) = quote
            && !self.text[inner_start + s.value.len()..].starts_with(q)
        {
            return Err("the closing quote is not where it should be");
        }
        let offset = if var.list_item { var.key.len() + 1 } else { 0 };
        Ok(inner_start + offset..inner_start + s.value.len())
    }

    /// Rewrites every literal value of each target key that reaches a service's
    /// environment, once per place it is written, and checks the result.
    pub fn rotate(&self, targets: &BTreeMap<String, String>) -> Result<Rewrite, ComposeError> {
        let mut rw = Rewrite::default();
        let mut edits: BTreeMap<usize, (std::ops::Range<usize>, String)> = BTreeMap::new();
        let env = self.environment();
        for var in &env {
            let Some(new) = targets.get(&var.key) else { continue };
            match &var.source {
                Source::Literal(_) => {
                    let range = self.value_range(var).map_err(|why| ComposeError::Uneditable {
                        pos: var.pos,
                        service: var.service.clone(),
                        key: var.key.clone(),
                        why,
                    })?;
                    // A plain placeholder (`JWT_SECRET: <your-secret>`) becomes a quoted
                    // secret, as a placeholder list does; other values keep their style.
                    let plain = self.scalar(var.node).is_some_and(|s| s.style == ScalarStyle::Plain);
                    let placeholder = matches!(&var.source, Source::Literal(v) if crate::secrets::is_placeholder(v));
                    let text = if plain && placeholder && !var.list_item { format!("\"{new}\"") } else { new.clone() };
                    edits.insert(range.start, (range, text));
                    rw.rotated.entry(var.key.clone()).or_default().push(var.service.clone());
                }
                Source::Interpolated(_) | Source::PassThrough => {
                    rw.from_env.entry(var.key.clone()).or_default().push(var.service.clone());
                }
                Source::NotScalar { .. } => {
                    let range = self.flow_sequence_range(var).map_err(|why| ComposeError::Uneditable {
                        pos: var.pos,
                        service: var.service.clone(),
                        key: var.key.clone(),
                        why,
                    })?;
                    edits.insert(range.start, (range, format!("\"{new}\"")));
                    rw.rotated.entry(var.key.clone()).or_default().push(var.service.clone());
                }
            }
        }
        let edited: Vec<usize> = edits.keys().copied().collect();
        rw.strays = self.strays(targets, &env, &edited);
        let mut text = self.text.clone();
        for (range, new) in edits.values().rev() {
            text.replace_range(range.clone(), new);
        }
        rw.edits = edits.into_values().collect();
        rw.bytes = text.into_bytes();
        verify(&self.text, &rw.bytes, targets)?;
        Ok(rw)
    }

    /// Literal `KEY: value` or `KEY=value` occurrences of target keys that no service's
    /// environment reaches (build args, labels, unused anchors, shadowed merges).
    fn strays(&self, targets: &BTreeMap<String, String>, env: &[EnvVar], edited: &[usize]) -> Vec<Stray> {
        let reached: std::collections::HashSet<usize> =
            env.iter().filter_map(|v| self.scalar(v.node).map(|s| s.start)).chain(edited.iter().copied()).collect();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut push = |key: &str, s: &Scalar| {
            if targets.contains_key(key) && !reached.contains(&s.start) && !is_null(s) && seen.insert(s.start) {
                out.push(Stray { key: key.to_string(), pos: self.lines.pos(&self.text, s.start) });
            }
        };
        for node in &self.nodes {
            match node {
                Node::Map(pairs) => {
                    for &(k, v) in pairs {
                        if let (Some(ks), Node::Scalar(vs)) = (self.scalar(k), &self.nodes[v]) {
                            push(&ks.value, vs);
                        }
                    }
                }
                Node::Seq(items) => {
                    for &i in items {
                        if let Node::Scalar(s) = &self.nodes[i]
                            && let Some((k, _)) = s.value.split_once('=')
                        {
                            push(k, s);
                        }
                    }
                }
                _ => {}
            }
        }
        out.sort_by_key(|s| (s.pos.line, s.pos.col));
        out
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Byte ranges of every literal environment value, for masking in diffs.
    pub fn secret_ranges(&self) -> Vec<std::ops::Range<usize>> {
        self.environment()
            .iter()
            .filter(|v| matches!(v.source, Source::Literal(_)))
            .filter_map(|v| self.value_range(v).ok())
            .collect()
    }
}

/// Skips an anchor (`&name`) or tag (`!tag`) and the blanks after it, which the
/// parser counts as part of the scalar's span.
fn skip_properties(text: &str, mut at: usize) -> usize {
    while text[at..].starts_with(['&', '!']) {
        let token = text[at..].find([' ', '\t', '\n', '\r']).unwrap_or(text.len() - at);
        at += token;
        at += text[at..].len() - text[at..].trim_start_matches([' ', '\t', '\r', '\n']).len();
    }
    at
}

fn is_null(s: &Scalar) -> bool {
    s.style == ScalarStyle::Plain && matches!(s.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

use crate::interpolate::has_references as is_interpolated;

/// Converts the parser's character indices to byte offsets in `text` by walking from
/// the last answer (events come nearly in order), without a table the size of the file.
struct CharToByte<'a> {
    text: &'a str,
    chars: usize,
    bytes: usize,
}

impl<'a> CharToByte<'a> {
    fn new(text: &'a str) -> Self {
        CharToByte { text, chars: 0, bytes: 0 }
    }

    fn byte(&mut self, index: usize) -> usize {
        while self.chars < index && self.bytes < self.text.len() {
            self.bytes += self.text[self.bytes..].chars().next().map_or(1, char::len_utf8);
            self.chars += 1;
        }
        while self.chars > index {
            self.bytes -= self.text[..self.bytes].chars().next_back().map_or(1, char::len_utf8);
            self.chars -= 1;
        }
        self.bytes
    }
}

/// Runs the parser over `text`, building the node tree with byte offsets in `original`
/// (the same characters, give or take a lifted bracket); an error is a character index
/// and a message.
fn events(text: &str, original: &str) -> Result<Builder, Failed> {
    let mut b = Builder {
        nodes: Vec::new(),
        starts: Vec::new(),
        anchors: HashMap::new(),
        stack: Vec::new(),
        root: None,
        docs: 0,
        flows: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    let mut offsets = CharToByte::new(original);
    while let Some(ev) = parser.next_event() {
        let flows = |b: &Builder| b.flows.iter().flatten().copied().collect();
        let (ev, span) =
            ev.map_err(|e| Failed { index: e.marker().index(), message: e.info().to_string(), flows: flows(&b) })?;
        let index = span.start.index();
        let start = offsets.byte(index);
        b.event(ev, start, original).map_err(|m| Failed { index, message: m.to_string(), flows: flows(&b) })?;
    }
    Ok(b)
}

/// A parse that failed: where (a character index), why, and the flow collections open
/// at that moment (is a sequence, byte offset of its bracket), outermost first.
struct Failed {
    index: usize,
    message: String,
    flows: Vec<(bool, usize)>,
}

/// Whether the flow collection whose bracket is at byte `at` is closed anywhere in
/// `text`: brackets counted, quoted strings and comments skipped.
fn flow_closes(text: &str, at: usize) -> bool {
    let mut depth = 0usize;
    let mut chars = text[at..].char_indices().peekable();
    let mut prev = ' ';
    while let Some((_, c)) = chars.next() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return true;
                }
            }
            '"' | '\'' => {
                let mut escaped = false;
                for (_, q) in chars.by_ref() {
                    if c == '"' && q == '\\' && !escaped {
                        escaped = true;
                        continue;
                    }
                    if q == c && !escaped {
                        break;
                    }
                    escaped = false;
                }
            }
            '#' if prev.is_whitespace() => {
                for (_, q) in chars.by_ref() {
                    if q == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
        prev = c;
    }
    false
}

/// The error for a failed parse: where it was noticed, and, when a flow collection was
/// open, where that opened (never closed: the error is put there).
fn syntax_error(text: &str, at: usize, failed: &Failed) -> ComposeError {
    let noticed = pos_at(text, at);
    let what = |seq: bool| if seq { "flow sequence" } else { "flow mapping" };
    if let Some(&(seq, open)) = failed.flows.iter().find(|(_, open)| !flow_closes(text, *open)) {
        let opened = pos_at(text, open);
        return ComposeError::Syntax {
            pos: opened,
            message: format!(
                "{} opened at {opened} is never closed (noticed at {noticed}: {})",
                what(seq),
                failed.message
            ),
        };
    }
    // A quoted string that never ends is noticed at its opening quote, or at the end of the file.
    if let Some(q @ ('"' | '\'')) = text[at..].chars().next() {
        let closed = if q == '"' {
            let mut escaped = false;
            text[at + 1..].chars().any(|c| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
        } else {
            text[at + 1..].contains('\'')
        };
        if !closed {
            let kind = if q == '"' { "double" } else { "single" };
            return ComposeError::Syntax {
                pos: noticed,
                message: format!("{kind}-quoted string opened at {noticed} is never closed ({})", failed.message),
            };
        }
    }
    match failed.flows.last() {
        Some(&(seq, open)) => ComposeError::Syntax {
            pos: noticed,
            message: format!("{} (inside the {} opened at {})", failed.message, what(seq), pos_at(text, open)),
        },
        None => ComposeError::Syntax { pos: noticed, message: failed.message.clone() },
    }
}

/// Moves a closing bracket that stands alone on its line (at `index`) to the end of
/// the last content line before it, taking one blank from its own line's indent so
/// that no character after it changes index. Only when that content line has no `#`.
fn lift_closing_bracket(chars: &mut Vec<char>, index: usize) -> bool {
    if !matches!(chars.get(index), Some(']' | '}')) {
        return false;
    }
    let line_start = chars[..index].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
    if index == line_start || chars[line_start..index].iter().any(|&c| c != ' ') {
        return false;
    }
    // The last line before it that is neither blank nor a comment.
    let mut end = line_start.saturating_sub(1);
    loop {
        let start = chars[..end].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
        let line: String = chars[start..end].iter().collect();
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            if line.contains('#') {
                return false;
            }
            let bracket = chars[index];
            chars[index] = ' ';
            chars.remove(line_start);
            chars.insert(end, bracket);
            return true;
        }
        if start == 0 {
            return false;
        }
        end = start - 1;
    }
}

struct Builder {
    nodes: Vec<Node>,
    starts: Vec<usize>,
    /// Collections open now that were written in flow style (`[`, `{`): (is a
    /// sequence, byte offset of the bracket), for an error that names where one opened.
    flows: Vec<Option<(bool, usize)>>,
    anchors: HashMap<usize, NodeId>,
    /// Open collections: node id, and a pending map key.
    stack: Vec<(NodeId, Option<NodeId>)>,
    root: Option<NodeId>,
    docs: usize,
}

impl Builder {
    fn event(&mut self, ev: Event<'_>, start: usize, text: &str) -> Result<(), &'static str> {
        match ev {
            Event::DocumentStart(_) => self.docs += 1,
            Event::Scalar(value, style, anchor, _) => {
                let id = self.push(Node::Scalar(Scalar { value: value.into_owned(), style, start }), anchor, start);
                self.attach(id);
            }
            Event::Alias(anchor) => {
                let target = *self.anchors.get(&anchor).ok_or("alias to an unknown anchor")?;
                let id = self.push(Node::Alias(target), 0, start);
                self.attach(id);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let seq = matches!(ev, Event::SequenceStart(..));
                let node = if seq { Node::Seq(Vec::new()) } else { Node::Map(Vec::new()) };
                let id = self.push(node, anchor, start);
                self.stack.push((id, None));
                let at = skip_properties(text, start.min(text.len()));
                let flow = text[at..].starts_with(if seq { '[' } else { '{' });
                self.flows.push(flow.then_some((seq, at)));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (id, _) = self.stack.pop().ok_or("unbalanced collection")?;
                self.flows.pop();
                self.attach(id);
            }
            _ => {}
        }
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize, start: usize) -> NodeId {
        self.starts.push(start);
        self.nodes.push(node);
        let id = self.nodes.len() - 1;
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        id
    }

    fn attach(&mut self, id: NodeId) {
        let Some((parent, pending)) = self.stack.last_mut() else {
            self.root.get_or_insert(id);
            return;
        };
        match &mut self.nodes[*parent] {
            Node::Seq(items) => items.push(id),
            Node::Map(pairs) => match pending.take() {
                Some(k) => pairs.push((k, id)),
                None => *pending = Some(id),
            },
            _ => {}
        }
    }
}

/// A compose file as serde_yaml reads it, independently of the editing parser: what
/// docker compose itself refuses, and the `env_file:` entries compose also reads
/// secrets from.
pub struct Outline {
    /// (service, path as written) for each `env_file:` entry: a path, a list of paths,
    /// or a list of `{path, required}`.
    pub env_files: Vec<(String, String)>,
}

/// Reads the outline, or says what compose would refuse: duplicate keys, aliases that
/// recurse, and shapes that are no compose file (no `services` mapping, a service or an
/// `environment:` that is neither a mapping nor a list). `check` fails these rather than
/// call them "configuration OK" (and `rotate` refuses them anyway).
pub fn outline(bytes: &[u8]) -> Result<Outline, String> {
    use serde_yaml::Value;
    let mut doc: Value = serde_yaml::from_slice(bytes).map_err(|e| e.to_string())?;
    doc.apply_merge().map_err(|e| format!("merge keys: {e}"))?;
    let services = match doc.get("services") {
        Some(Value::Mapping(m)) => m,
        Some(Value::Null) | None => return Err("no `services:` mapping: not a compose file".into()),
        Some(_) => return Err("`services:` is not a mapping".into()),
    };
    let mut env_files = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap_or("?");
        match service {
            Value::Mapping(m) => match m.get("environment") {
                None | Some(Value::Mapping(_) | Value::Sequence(_) | Value::Null) => {}
                Some(_) => return Err(format!("service {name}: `environment:` is neither a mapping nor a list")),
            },
            Value::Null => {}
            _ => return Err(format!("service {name} is not a mapping")),
        }
        let paths = match service.get("env_file") {
            Some(Value::String(p)) => vec![p.clone()],
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(p) => Some(p.clone()),
                    Value::Mapping(m) => m.get("path").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        env_files.extend(paths.into_iter().map(|p| (name.to_string(), p)));
    }
    Ok(Outline { env_files })
}

/// Reads old and new with serde_yaml and checks that (a) the only leaves that
/// differ are values of target keys, each now holding that key's new value, and
/// (b) every service that had a literal value for a target key now has the new one.
fn verify(old: &str, new: &[u8], targets: &BTreeMap<String, String>) -> Result<(), ComposeError> {
    use serde_yaml::Value;
    let read = |s: &[u8], which: &str| -> Result<Value, ComposeError> {
        serde_yaml::from_slice(s)
            .map_err(|e| ComposeError::Verify(format!("serde_yaml can't read the {which} file: {e}")))
    };
    let merged = |mut v: Value, which: &str| -> Result<Value, ComposeError> {
        v.apply_merge().map_err(|e| ComposeError::Verify(format!("merge keys in the {which} file: {e}")))?;
        Ok(v)
    };
    let old = read(old.as_bytes(), "original")?;
    let new = read(new, "rewritten")?;
    same_but_targets(&old, &new, None, targets, "")?;

    let (old, new) = (merged(old, "original")?, merged(new, "rewritten")?);
    let Some(Value::Mapping(services)) = old.get("services") else { return Ok(()) };
    for (name, def) in services {
        let name = name.as_str().unwrap_or("?");
        let env_of =
            |doc: &Value| doc.get("services").and_then(|s| s.get(name)).and_then(|d| d.get("environment")).cloned();
        let (Some(before), Some(after)) = (def.get("environment"), env_of(&new)) else { continue };
        for (key, value) in targets {
            let had_literal = match before {
                Value::Mapping(m) => m.get(key.as_str()).is_some_and(|v| match v {
                    Value::String(s) => !is_interpolated(s),
                    Value::Bool(_) | Value::Number(_) => true,
                    Value::Sequence(items) => items.len() == 1, // a `[PLACEHOLDER]`
                    _ => false,
                }),
                Value::Sequence(items) => items.iter().any(|i| {
                    i.as_str().and_then(|s| s.split_once('=')).is_some_and(|(k, v)| k == key && !is_interpolated(v))
                }),
                _ => false,
            };
            let has_new = match &after {
                Value::Mapping(m) => m.get(key.as_str()) == Some(&Value::String(value.clone())),
                Value::Sequence(items) => items.iter().any(|i| i.as_str() == Some(&format!("{key}={value}"))),
                _ => false,
            };
            if had_literal && !has_new {
                return Err(ComposeError::Verify(format!("service {name:?} does not receive the new {key}")));
            }
        }
    }
    Ok(())
}

fn same_but_targets(
    old: &serde_yaml::Value,
    new: &serde_yaml::Value,
    key: Option<&str>,
    targets: &BTreeMap<String, String>,
    path: &str,
) -> Result<(), ComposeError> {
    use serde_yaml::Value;
    let differ = || {
        ComposeError::Verify(format!(
            "the rewritten file differs at {} beyond the rotated values",
            if path.is_empty() { "the top" } else { path }
        ))
    };
    match (old, new) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            if a.len() != b.len() || a.keys().zip(b.keys()).any(|(x, y)| x != y) {
                return Err(differ());
            }
            for ((k, x), y) in a.iter().zip(b.values()) {
                let name = k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"));
                same_but_targets(x, y, k.as_str(), targets, &format!("{path}.{name}"))?;
            }
            Ok(())
        }
        (Value::Sequence(a), Value::Sequence(b)) => {
            if a.len() != b.len() {
                return Err(differ());
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let item_key = match (x, y) {
                    (Value::String(xs), Value::String(ys)) if xs != ys => {
                        let (kx, ky) = (xs.split_once('='), ys.split_once('='));
                        match (kx, ky) {
                            (Some((kx, _)), Some((ky, vy))) if kx == ky && targets.get(kx).is_some_and(|n| n == vy) => {
                                continue;
                            }
                            _ => return Err(differ()),
                        }
                    }
                    _ => None,
                };
                same_but_targets(x, y, item_key, targets, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Tagged(a), Value::Tagged(b)) if a.tag == b.tag => {
            same_but_targets(&a.value, &b.value, key, targets, path)
        }
        (a, b) if a == b => Ok(()),
        (_, Value::String(b)) if key.and_then(|k| targets.get(k)).is_some_and(|n| n == b) => Ok(()),
        _ => Err(differ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn rewrites_every_form_once() {
        let src = r#"x-env: &env
  JWT_SECRET: "old"   # shared
services:
  a:
    environment:
      <<: *env
      OTHER: keep
  b:
    environment: *env
  c:
    environment:
      - JWT_SECRET=old2
      - 'SESSION_SECRET=s1'
      - FROM=${X}
  d:
    environment:
      JWT_SECRET: ${JWT_SECRET:-x}
      SESSION_SECRET:
    build:
      args:
        - JWT_SECRET=buildarg
    labels:
      JWT_SECRET: label
"#;
        let f = ComposeFile::parse(src.as_bytes()).unwrap();
        let rw = f.rotate(&targets(&[("JWT_SECRET", "NEW"), ("SESSION_SECRET", "S2")])).unwrap();
        let out = String::from_utf8(rw.bytes).unwrap();
        assert_eq!(out, src.replace("\"old\"", "\"NEW\"").replace("=old2", "=NEW").replace("=s1'", "=S2'"));
        assert_eq!(rw.rotated["JWT_SECRET"], vec!["a", "b", "c"]);
        assert_eq!(rw.from_env["JWT_SECRET"], vec!["d"]);
        assert_eq!(rw.from_env["SESSION_SECRET"], vec!["d"]);
        let strays: Vec<_> = rw.strays.iter().map(|s| s.pos.line).collect();
        assert_eq!(strays, vec![21, 23]);
    }

    #[test]
    fn anchored_and_tagged_values() {
        let src = "services:\n  a:\n    environment:\n      JWT_SECRET: &j !!str \"old\"\n      X: *j\n  b:\n    environment:\n      SESSION_SECRET: &s !!str \"old\"\n";
        let f = ComposeFile::parse(src.as_bytes()).unwrap();
        let rw = f.rotate(&targets(&[("SESSION_SECRET", "N")])).unwrap();
        assert_eq!(String::from_utf8(rw.bytes).unwrap(), src.replace("&s !!str \"old\"", "&s !!str \"N\""));
        // Rotating JWT_SECRET would change X through the alias too: refused; and the other
        // way round, rotating X (which holds only the alias) would change JWT_SECRET.
        let e = f.rotate(&targets(&[("JWT_SECRET", "S")])).unwrap_err();
        assert!(matches!(e, ComposeError::Verify(_)), "{e}");
        let e = f.rotate(&targets(&[("X", "S")])).unwrap_err();
        assert!(matches!(e, ComposeError::Verify(_)), "{e}");
    }

    #[test]
    fn shallow_merge_replaces_the_anchor_list() {
        let src = "x: &r\n  environment:\n    - JWT_SECRET=anchor\nservices:\n  w:\n    <<: *r\n    environment:\n      - JWT_SECRET=own\n";
        let f = ComposeFile::parse(src.as_bytes()).unwrap();
        let rw = f.rotate(&targets(&[("JWT_SECRET", "N")])).unwrap();
        assert_eq!(String::from_utf8(rw.bytes).unwrap(), src.replace("=own", "=N"));
        assert_eq!(rw.strays.len(), 1);
    }

    #[test]
    fn refuses_what_it_cannot_edit_losslessly() {
        let src = "services:\n  a:\n    environment:\n      JWT_SECRET: \"a\\u0041\"\n";
        let f = ComposeFile::parse(src.as_bytes()).unwrap();
        let e = f.rotate(&targets(&[("JWT_SECRET", "N")])).unwrap_err();
        assert!(e.to_string().starts_with("4:19: JWT_SECRET of service \"a\""), "{e}");
    }

    #[test]
    fn plain_placeholders_are_replaced_with_a_quoted_secret() {
        let doc = ComposeFile::parse(b"services:\n  a:\n    environment:\n      JWT_SECRET: <your-secret>\n      SESSION_SECRET: keep-style-0123\n").unwrap();
        let targets: BTreeMap<String, String> =
            [("JWT_SECRET", "NEW1"), ("SESSION_SECRET", "NEW2")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let rw = doc.rotate(&targets).unwrap();
        let text = String::from_utf8(rw.bytes).unwrap();
        assert!(text.contains("JWT_SECRET: \"NEW1\"\n"), "{text}");
        assert!(text.contains("SESSION_SECRET: NEW2\n"), "{text}");
    }

    #[test]
    fn placeholder_lists_are_replaced_with_a_quoted_secret() {
        // The CRM deployment document's shape.
        let src = "services:\n  api:\n    environment:\n      JWT_SECRET: [SECURE_TOKEN]   # fill in\n      SESSION_SECRET: [ SECURE_SESSION_TOKEN ]\n      OTHER: [a, b]\n";
        let f = ComposeFile::parse(src.as_bytes()).unwrap();
        let env = f.environment();
        assert_eq!(env[0].source, Source::NotScalar { kind: "list", item: Some("SECURE_TOKEN".into()) });
        let rw = f.rotate(&targets(&[("JWT_SECRET", "N1"), ("SESSION_SECRET", "N2")])).unwrap();
        assert_eq!(
            String::from_utf8(rw.bytes).unwrap(),
            src.replace("[SECURE_TOKEN]", "\"N1\"").replace("[ SECURE_SESSION_TOKEN ]", "\"N2\"")
        );
        // A list that is not one plain word is left to a human, with its position.
        let e = f.rotate(&targets(&[("OTHER", "N")])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "6:14: OTHER of service \"api\" can't be edited losslessly (a list of more than one item)"
            ),
            "{e}"
        );
        let block = "services:\n  api:\n    environment:\n      JWT_SECRET:\n        - SECURE_TOKEN\n";
        let e = ComposeFile::parse(block.as_bytes()).unwrap().rotate(&targets(&[("JWT_SECRET", "N")])).unwrap_err();
        assert!(e.to_string().contains("(a block list)"), "{e}");
    }

    #[test]
    fn unclosed_constructs_are_reported_where_they_open() {
        let e =
            ComposeFile::parse(b"services:\n  api:\n    environment:\n      JWT_SECRET: [unclosed\n      OTHER: x\n")
                .err()
                .unwrap();
        assert!(e.to_string().starts_with("4:19: flow sequence opened at 4:19 is never closed (noticed at 5:"), "{e}");
        let e = ComposeFile::parse(b"a:\n  b: {x: 1\n").err().unwrap();
        assert!(e.to_string().starts_with("2:6: flow mapping opened at 2:6 is never closed"), "{e}");
        let e = ComposeFile::parse(b"a:\n  b: \"open\n  c: 1\n").err().unwrap();
        assert!(e.to_string().starts_with("2:6: double-quoted string opened at 2:6 is never closed"), "{e}");
        // A closed flow collection with an error inside says where it opened.
        let e = ComposeFile::parse(b"a: [x, y: z: w]\n").err().unwrap();
        assert!(e.to_string().contains("inside the flow sequence opened at 1:4"), "{e}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = ComposeFile::parse(b"services:\n  a: [\n").err().unwrap();
        assert!(matches!(e, ComposeError::Syntax { .. }), "{e}");
    }

    #[test]
    fn accepts_closing_bracket_at_parent_indent() {
        let src = "services:\n  a:\n    healthcheck:\n      test: [\n          \"CMD\",\n          # note\n          \"x\"\n      ]\n    environment:\n      JWT_SECRET: old\n";
        let f = ComposeFile::parse(src.as_bytes()).unwrap();
        let rw = f.rotate(&targets(&[("JWT_SECRET", "N")])).unwrap();
        assert_eq!(String::from_utf8(rw.bytes).unwrap(), src.replace(": old", ": N"));
    }
}
