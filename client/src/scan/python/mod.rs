//! The Python rules, on the parsed syntax tree (`ruff_python_parser`): code run from decoded,
//! decompressed or downloaded data, shell commands, downloads then run, unpickling of data from
//! outside the pack, writes outside the pack's folder, and imports of names built to hide them.
//!
//! Labels (`labels.rs`) flow through a module: a call that decodes or downloads labels its
//! result, an assignment (to a name, `self.x`, a `with ... as f`, a `for` target, a walrus)
//! labels the name, a function labels what it returns, a write of downloaded data labels the
//! file written. The flow is per module and ignores order (rounds until nothing changes); the
//! findings come from the last round. Files over `MAX_FILE_BYTES`, and trees deeper than
//! `MAX_DEPTH`, are reported rather than followed.

mod labels;

use std::collections::{HashMap, HashSet};

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, Stmt};
use ruff_source_file::LineIndex;
use ruff_text_size::{Ranged, TextSize};

use labels::Labels;

use super::{Finding, Severity};

/// Largest Python file parsed.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Deepest expression or statement nesting followed.
pub const MAX_DEPTH: usize = 400;
/// Longest dotted name followed (`a.b.c...`).
const MAX_DOTTED_PARTS: usize = 32;
/// Most rounds of label flow per module.
const MAX_ROUNDS: usize = 4;
/// The scanning thread's stack: deep (but capped) trees are followed and dropped recursively.
const STACK_BYTES: usize = 256 << 20;

/// Scans Python sources (member name, bytes) on a thread with room for deep syntax trees. A
/// failure of the scan itself is a finding, never a clean result.
pub fn scan_sources(sources: Vec<(String, Vec<u8>)>) -> Vec<Finding> {
    let run = std::thread::Builder::new()
        .name("airlock-scan-python".to_owned())
        .stack_size(STACK_BYTES)
        .spawn(move || sources.iter().flat_map(|(name, bytes)| scan_source(name, bytes)).collect());
    match run.map(|thread| thread.join()) {
        Ok(Ok(findings)) => findings,
        _ => {
            vec![finding("python.unscanned", Severity::Medium, "", None, "the Python scan failed".to_owned())]
        }
    }
}

fn finding(rule: &'static str, severity: Severity, file: &str, line: Option<u32>, detail: String) -> Finding {
    Finding { rule: rule.to_owned(), severity, file: file.to_owned(), line, detail }
}

/// The findings of one Python file.
pub fn scan_source(file: &str, bytes: &[u8]) -> Vec<Finding> {
    if bytes.len() > MAX_FILE_BYTES {
        return vec![finding(
            "python.unscanned",
            Severity::Medium,
            file,
            None,
            format!("{} bytes, over the {MAX_FILE_BYTES}-byte cap: not parsed, review by hand", bytes.len()),
        )];
    }
    let Ok(source) = std::str::from_utf8(bytes) else {
        return vec![finding("python.unparsable", Severity::Medium, file, None, "not UTF-8".to_owned())];
    };
    let lines = LineIndex::from_source_text(source);
    let parsed = match ruff_python_parser::parse_module(source) {
        Ok(parsed) => parsed,
        Err(error) => {
            let line = line_of(&lines, error.location.start());
            return vec![finding(
                "python.unparsable",
                Severity::Medium,
                file,
                line,
                format!("not parsed ({}): review by hand", error.error),
            )];
        }
    };
    let mut analysis = Analysis::new(file, &lines);
    for _ in 0..MAX_ROUNDS {
        analysis.changed = false;
        analysis.visit_body(parsed.suite());
        if !analysis.changed {
            break;
        }
    }
    analysis.report = true;
    analysis.visit_body(parsed.suite());
    analysis.findings
}

fn line_of(lines: &LineIndex, offset: TextSize) -> Option<u32> {
    u32::try_from(lines.line_index(offset).get()).ok()
}

struct Analysis<'a> {
    file: &'a str,
    lines: &'a LineIndex,
    /// Local name → the module or object it was imported as.
    imports: HashMap<String, String>,
    /// Name (or `self.x`) → labels of what was assigned to it.
    names: HashMap<String, Labels>,
    /// Function name → labels of what it returns.
    returns: HashMap<String, Labels>,
    /// Open file objects → the path expression they were opened on.
    handles: HashMap<String, &'a Expr>,
    /// Literal file names that downloaded data was written to.
    downloaded_files: HashSet<String>,
    function: Vec<String>,
    /// Labels of the expression being visited.
    acc: Labels,
    depth: usize,
    changed: bool,
    report: bool,
    reported: HashSet<(&'static str, Option<u32>)>,
    findings: Vec<Finding>,
}

impl<'a> Analysis<'a> {
    fn new(file: &'a str, lines: &'a LineIndex) -> Self {
        Self {
            file,
            lines,
            imports: HashMap::new(),
            names: HashMap::new(),
            returns: HashMap::new(),
            handles: HashMap::new(),
            downloaded_files: HashSet::new(),
            function: Vec::new(),
            acc: Labels::NONE,
            depth: 0,
            changed: false,
            report: false,
            reported: HashSet::new(),
            findings: Vec::new(),
        }
    }

    fn flag(&mut self, rule: &'static str, severity: Severity, at: TextSize, detail: String) {
        let line = line_of(self.lines, at);
        if self.report && self.reported.insert((rule, line)) {
            self.findings.push(finding(rule, severity, self.file, line, detail));
        }
    }

    /// Visits `expr` and returns its labels (the union of its own and its parts').
    fn labels_of(&mut self, expr: &'a Expr) -> Labels {
        let outer = std::mem::take(&mut self.acc);
        self.visit_expr(expr);
        std::mem::replace(&mut self.acc, outer)
    }

    fn add(map: &mut HashMap<String, Labels>, key: String, labels: Labels, changed: &mut bool) {
        let entry = map.entry(key).or_default();
        if (*entry | labels) != *entry {
            *entry |= labels;
            *changed = true;
        }
    }

    /// Gives the assignment target `target` the labels `labels`.
    fn bind(&mut self, target: &'a Expr, labels: Labels) {
        match target {
            Expr::Tuple(ast::ExprTuple { elts, .. }) | Expr::List(ast::ExprList { elts, .. }) => {
                for element in elts {
                    self.bind(element, labels);
                }
            }
            Expr::Starred(starred) => self.bind(&starred.value, labels),
            _ => {
                if let Some(key) = self.dotted(target) {
                    Self::add(&mut self.names, key, labels, &mut self.changed);
                }
            }
        }
    }

    /// `a.b.c` as written, for names and attribute chains.
    fn dotted(&self, expr: &Expr) -> Option<String> {
        let mut parts = Vec::new();
        let mut at = expr;
        loop {
            match at {
                Expr::Name(name) => {
                    parts.push(name.id.as_str());
                    break;
                }
                Expr::Attribute(attribute) if parts.len() < MAX_DOTTED_PARTS => {
                    parts.push(attribute.attr.as_str());
                    at = &attribute.value;
                }
                _ => return None,
            }
        }
        parts.reverse();
        Some(parts.join("."))
    }

    /// The qualified name a call's function refers to: imports resolved, `builtins.` dropped,
    /// `Path(...)` taken as `pathlib.Path`, `__import__('m')` as `m`.
    fn qualify(&self, expr: &Expr) -> Option<String> {
        let full = self.qualify_within(expr, MAX_DOTTED_PARTS)?;
        let bare = full.strip_prefix("builtins.").or_else(|| full.strip_prefix("__builtins__."));
        Some(bare.map_or(full.clone(), str::to_owned))
    }

    fn qualify_within(&self, expr: &Expr, parts: usize) -> Option<String> {
        if parts == 0 {
            return None;
        }
        match expr {
            Expr::Name(name) => {
                let id = name.id.as_str();
                Some(self.imports.get(id).map_or(id, String::as_str).to_owned())
            }
            Expr::Attribute(attribute) => {
                let base = self.qualify_within(&attribute.value, parts - 1)?;
                Some(format!("{base}.{}", attribute.attr.as_str()))
            }
            Expr::Call(call) => {
                let function = self.qualify_within(&call.func, parts - 1)?;
                if labels::imports_by_name(&function) {
                    return call.arguments.args.first().and_then(literal_text).map(str::to_owned);
                }
                (function == "pathlib.Path").then_some(function)
            }
            _ => None,
        }
    }

    /// Labels a file written through `target` (a name, a literal, or a `Path(...)` of them).
    fn taint_file(&mut self, target: &'a Expr, labels: Labels) {
        match target {
            Expr::StringLiteral(literal) => {
                if self.downloaded_files.insert(literal.value.to_str().to_owned()) {
                    self.changed = true;
                }
            }
            Expr::Call(call) if self.qualify(&call.func).as_deref() == Some("pathlib.Path") => {
                if let Some(first) = call.arguments.args.first() {
                    self.taint_file(first, labels);
                }
            }
            _ => {
                if let Some(key) = self.dotted(target) {
                    Self::add(&mut self.names, key, labels, &mut self.changed);
                }
            }
        }
    }

    /// The file an `open(path, mode)` call (or `Path(path).open(mode)`) writes, if it writes.
    fn opened_for_writing(&self, call: &'a ast::ExprCall, name: Option<&str>) -> Option<&'a Expr> {
        let mode_at = |position: usize| {
            call.arguments
                .args
                .get(position)
                .or_else(|| call.arguments.find_keyword("mode").map(|k| &k.value))
                .and_then(literal_text)
        };
        match name {
            Some("open" | "io.open" | "codecs.open") => {
                mode_at(1).filter(|m| labels::is_write_mode(m))?;
                call.arguments.args.first()
            }
            _ => match &*call.func {
                Expr::Attribute(method) if method.attr.as_str() == "open" => {
                    mode_at(0).filter(|m| labels::is_write_mode(m))?;
                    Some(&method.value)
                }
                _ => None,
            },
        }
    }

    fn call(&mut self, call: &'a ast::ExprCall) -> Labels {
        let function = self.labels_of(&call.func);
        let name = self.qualify(&call.func);
        let args: Vec<Labels> = call.arguments.args.iter().map(|arg| self.labels_of(arg)).collect();
        let mut all = args.iter().fold(Labels::NONE, |a, b| a | *b);
        let mut shell = false;
        for keyword in &call.arguments.keywords {
            let labels = self.labels_of(&keyword.value);
            all |= labels;
            if keyword.arg.as_ref().is_some_and(|a| a.as_str() == "shell") {
                shell = !matches!(
                    keyword.value,
                    Expr::BooleanLiteral(ast::ExprBooleanLiteral { value: false, .. })
                );
            }
        }
        let first_literal = call.arguments.args.first().and_then(literal_text);
        let mut own = name.as_deref().map(|n| labels::of_call(n, first_literal)).unwrap_or_default();
        if let Some(returned) = name.as_deref().and_then(|n| self.returns.get(n)) {
            own |= *returned;
        }
        if let Expr::Attribute(method) = &*call.func {
            own |= self.method_labels(method, first_literal);
        }
        self.effects(call, name.as_deref(), all);
        if self.report {
            self.rules(call, name.as_deref(), &args, all | function, shell);
        }
        own | all | function
    }

    fn method_labels(&self, method: &ast::ExprAttribute, first_literal: Option<&str>) -> Labels {
        match method.attr.as_str() {
            "join" if matches!(*method.value, Expr::StringLiteral(_)) => Labels::OBFUSCATED,
            "decode"
                if first_literal.is_some_and(|codec| {
                    matches!(
                        codec.to_ascii_lowercase().as_str(),
                        "rot13" | "rot_13" | "base64" | "hex" | "zlib"
                    )
                }) =>
            {
                Labels::DECODED | Labels::OBFUSCATED
            }
            _ => Labels::NONE,
        }
    }

    /// Labels that a call gives to files: a download saved to a file, a file handle written
    /// with downloaded or decoded data.
    fn effects(&mut self, call: &'a ast::ExprCall, name: Option<&str>, all: Labels) {
        if matches!(name, Some("urllib.request.urlretrieve" | "urllib.urlretrieve" | "wget.download")) {
            if let Some(target) = call.arguments.args.get(1) {
                self.taint_file(target, Labels::DOWNLOADED);
            }
        }
        let carried = Labels::DOWNLOADED | Labels::DECODED | Labels::ENCODED;
        let Expr::Attribute(method) = &*call.func else { return };
        if !all.any(carried)
            || !matches!(method.attr.as_str(), "write" | "write_bytes" | "write_text" | "writelines")
        {
            return;
        }
        let written = match &*method.value {
            Expr::Name(handle) => self.handles.get(handle.id.as_str()).copied(),
            Expr::Call(inner) => {
                let inner_name = self.qualify(&inner.func);
                self.opened_for_writing(inner, inner_name.as_deref()).or(Some(&method.value))
            }
            _ => None,
        };
        if let Some(target) = written {
            self.taint_file(target, all);
        }
    }

    fn rules(
        &mut self,
        call: &'a ast::ExprCall,
        name: Option<&str>,
        args: &[Labels],
        all: Labels,
        shell: bool,
    ) {
        let at = call.range().start();
        let first_is_literal = call.arguments.args.first().is_some_and(|a| literal_text(a).is_some());
        let Some(name) = name else {
            self.write_rule(call, None, at);
            return;
        };
        if labels::runs_code(name) {
            if all.any(Labels::DOWNLOADED) {
                self.flag(
                    "python.download-exec",
                    Severity::High,
                    at,
                    format!("`{name}` runs downloaded code"),
                );
            } else if all.any(Labels::DECODED | Labels::ENCODED) {
                self.flag(
                    "python.exec-decoded",
                    Severity::High,
                    at,
                    format!("`{name}` runs decoded, decompressed or embedded encoded data"),
                );
            } else if !first_is_literal {
                self.flag(
                    "python.dynamic-code",
                    Severity::Low,
                    at,
                    format!("`{name}` of a value computed at run time"),
                );
            }
        }
        let process = labels::runs_shell(name) || labels::starts_process(name);
        if labels::runs_shell(name) || (labels::starts_process(name) && shell) {
            self.flag(
                "python.shell",
                Severity::High,
                at,
                format!("`{name}` runs a command through the shell"),
            );
        }
        if process && all.any(Labels::DOWNLOADED) {
            self.flag(
                "python.download-exec",
                Severity::High,
                at,
                format!("`{name}` runs something downloaded"),
            );
        }
        if labels::deserializes(name) {
            let outside = Labels::DOWNLOADED
                | Labels::DECODED
                | Labels::ENCODED
                | Labels::HOME
                | Labels::ABSOLUTE
                | Labels::PARENT
                | Labels::OTHER_PACK;
            if all.any(outside) {
                self.flag(
                    "python.unsafe-deserialize",
                    Severity::High,
                    at,
                    format!("`{name}` of data from outside the pack runs whatever code the data names"),
                );
            } else {
                let severity = if name.starts_with("marshal") { Severity::Medium } else { Severity::Low };
                self.flag("python.deserialize", severity, at, format!("`{name}` runs code the data names"));
            }
        }
        let hidden = Labels::OBFUSCATED | Labels::DECODED | Labels::ENCODED;
        if labels::imports_by_name(name) {
            if args.first().is_some_and(|l| l.any(hidden)) {
                self.flag(
                    "python.obfuscated-import",
                    Severity::High,
                    at,
                    format!("`{name}` of a module name built to hide it"),
                );
            } else if !first_is_literal {
                self.flag(
                    "python.dynamic-import",
                    Severity::Low,
                    at,
                    format!("`{name}` of a name computed at run time"),
                );
            }
        }
        if name == "getattr" && args.get(1).is_some_and(|l| l.any(hidden)) {
            self.flag(
                "python.obfuscated-import",
                Severity::High,
                at,
                "`getattr` of an attribute name built to hide it".to_owned(),
            );
        }
        self.write_rule(call, Some(name), at);
    }

    /// Writes whose path leaves the pack's folder.
    fn write_rule(&mut self, call: &'a ast::ExprCall, name: Option<&str>, at: TextSize) {
        let target = self.opened_for_writing(call, name).or_else(|| {
            if let Some(position) = name.and_then(labels::written_path_argument) {
                return call.arguments.args.get(position);
            }
            match &*call.func {
                Expr::Attribute(method) if labels::writes_path_method(method.attr.as_str()) => {
                    Some(&method.value)
                }
                _ => None,
            }
        });
        let Some(target) = target else { return };
        let report = std::mem::replace(&mut self.report, false);
        let place = self.labels_of(target);
        self.report = report;
        if place.any(Labels::STARTUP | Labels::OTHER_PACK) {
            self.flag(
                "python.write-outside",
                Severity::High,
                at,
                "writes a startup file, a shell profile or another pack's folder".to_owned(),
            );
        } else if place.any(Labels::HOME | Labels::ABSOLUTE | Labels::PARENT) {
            self.flag(
                "python.write-outside",
                Severity::Medium,
                at,
                "writes outside the pack's folder (home, an absolute path, a parent folder)".to_owned(),
            );
        }
    }

    /// Labels of an expression that is not a call, from the node itself.
    fn node(&self, expr: &Expr) -> Labels {
        match expr {
            Expr::Name(_) | Expr::Attribute(_) => {
                let key = self.dotted(expr);
                key.and_then(|k| self.names.get(&k).copied()).unwrap_or_default()
            }
            Expr::StringLiteral(literal) => {
                let text = literal.value.to_str();
                let downloaded =
                    if self.downloaded_files.contains(text) { Labels::DOWNLOADED } else { Labels::NONE };
                labels::of_text(text) | downloaded
            }
            Expr::BytesLiteral(literal) => labels::of_bytes(&literal.value.bytes().collect::<Vec<u8>>()),
            Expr::Subscript(subscript) => {
                let reversed = matches!(&*subscript.slice, Expr::Slice(ast::ExprSlice { step: Some(step), .. })
                    if matches!(&**step, Expr::UnaryOp(ast::ExprUnaryOp { op: ast::UnaryOp::USub, .. })));
                let home = self.qualify(&subscript.value).as_deref() == Some("os.environ")
                    && literal_text(&subscript.slice).is_some_and(labels::is_home_variable);
                (if reversed { Labels::OBFUSCATED } else { Labels::NONE })
                    | (if home { Labels::HOME } else { Labels::NONE })
            }
            Expr::BinOp(binary)
                if binary.op == ast::Operator::Add
                    && literal_text(&binary.left).is_some()
                    && literal_text(&binary.right).is_some() =>
            {
                Labels::OBFUSCATED
            }
            _ => Labels::NONE,
        }
    }
}

/// A plain string literal's text.
fn literal_text(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::StringLiteral(literal) => Some(literal.value.to_str()),
        _ => None,
    }
}

impl<'a> Visitor<'a> for Analysis<'a> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        if self.depth >= MAX_DEPTH {
            return self.too_deep(stmt.range().start());
        }
        self.depth += 1;
        match stmt {
            Stmt::Import(import) => {
                for alias in &import.names {
                    let module = alias.name.as_str();
                    match &alias.asname {
                        Some(local) => self.imports.insert(local.as_str().to_owned(), module.to_owned()),
                        None => {
                            let head = module.split('.').next().unwrap_or(module);
                            self.imports.insert(head.to_owned(), head.to_owned())
                        }
                    };
                }
            }
            Stmt::ImportFrom(import) if import.level == 0 => {
                let module = import.module.as_ref().map(|m| m.as_str()).unwrap_or_default();
                for alias in &import.names {
                    let local = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                    self.imports.insert(local.to_owned(), format!("{module}.{}", alias.name.as_str()));
                }
            }
            Stmt::Assign(assign) => {
                let labels = self.labels_of(&assign.value);
                for target in &assign.targets {
                    self.remember_handle(target, &assign.value);
                    self.bind(target, labels);
                }
            }
            Stmt::AnnAssign(ast::StmtAnnAssign { target, value: Some(value), .. })
            | Stmt::AugAssign(ast::StmtAugAssign { target, value, .. }) => {
                let labels = self.labels_of(value);
                self.bind(target, labels);
            }
            Stmt::For(for_loop) => {
                let labels = self.labels_of(&for_loop.iter);
                self.bind(&for_loop.target, labels);
                self.visit_body(&for_loop.body);
                self.visit_body(&for_loop.orelse);
            }
            Stmt::With(with) => {
                for item in &with.items {
                    let labels = self.labels_of(&item.context_expr);
                    if let Some(target) = &item.optional_vars {
                        self.remember_handle(target, &item.context_expr);
                        self.bind(target, labels);
                    }
                }
                self.visit_body(&with.body);
            }
            Stmt::FunctionDef(function) => {
                self.function.push(function.name.as_str().to_owned());
                visitor::walk_stmt(self, stmt);
                self.function.pop();
            }
            Stmt::Return(ast::StmtReturn { value: Some(value), .. }) => {
                let labels = self.labels_of(value);
                if let Some(function) = self.function.last().cloned() {
                    Self::add(&mut self.returns, function, labels, &mut self.changed);
                }
            }
            _ => visitor::walk_stmt(self, stmt),
        }
        self.depth -= 1;
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if self.depth >= MAX_DEPTH {
            return self.too_deep(expr.range().start());
        }
        self.depth += 1;
        let outer = std::mem::take(&mut self.acc);
        let own = match expr {
            Expr::Call(call) => self.call(call),
            _ => {
                visitor::walk_expr(self, expr);
                if let Expr::Named(named) = expr {
                    let value = self.acc;
                    self.bind(&named.target, value);
                }
                self.node(expr)
            }
        };
        let inner = std::mem::replace(&mut self.acc, outer);
        self.acc |= inner | own;
        self.depth -= 1;
    }
}

impl<'a> Analysis<'a> {
    fn remember_handle(&mut self, target: &'a Expr, value: &'a Expr) {
        if let (Expr::Name(handle), Expr::Call(call)) = (target, value) {
            let name = self.qualify(&call.func);
            if let Some(path) = self.opened_for_writing(call, name.as_deref()) {
                self.handles.insert(handle.id.as_str().to_owned(), path);
            }
        }
    }

    fn too_deep(&mut self, at: TextSize) {
        self.flag(
            "python.too-deep",
            Severity::Medium,
            at,
            format!("nested over {MAX_DEPTH} levels: the rest of this part is not followed, review by hand"),
        );
    }
}

#[cfg(test)]
mod tests;
