//! The `derive` command's report: for each task definition file, the execution role, every permission with the
//! reasons behind it, the findings, and the compiled policy, rendered as text, JSON (schema 1) or the bare policy
//! documents. Reading the inputs (files, or `-` for stdin) and deriving them is here; comparing them with a policy
//! document (`--against`) is [`check`], and answering look-ups from AWS (`--online`) is [`online`].
//!
//! Offline, the secrets and parameters that were not looked up are kept apart from the other findings: text output
//! groups them into one line per file (JSON keeps every finding).

pub mod check;
pub mod online;

use std::borrow::Borrow;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::derive::{self, Derivation, DeriveContext, DeriveOptions, Facts, Finding};
use crate::model::TaskDefinition;
use crate::plan::{FindingJson, INLINE_POLICY_LIMIT, RequirementJson};
use crate::policy::{self, PolicyDocument};

/// The file name that stands for standard input.
pub const STDIN: &str = "-";

/// One input: its name as given, and its text or why it could not be read.
pub type Input = (String, Result<String, String>);

/// Where one input comes from: a file to read, or text (standard input) or an error already known.
pub enum Source {
    /// A file, read when its turn comes.
    File(PathBuf),
    /// Standard input as read, or why an input cannot be read at all.
    Read(Input),
}

/// Every input named by `files`: a file, a directory (its `*.json` files, sorted) or `-` (standard input, read
/// here, once: a second `-` is an error). Files are not read yet ([`read_source`]).
pub fn sources(files: &[PathBuf], stdin: &mut dyn Read) -> Vec<Source> {
    let mut stdin_read = false;
    let mut sources = Vec::new();
    for path in files {
        let name = path.display().to_string();
        if name == STDIN {
            let first = !std::mem::replace(&mut stdin_read, true);
            let mut text = String::new();
            let text = match stdin.read_to_string(&mut text) {
                _ if !first => Err("standard input can be read only once".to_string()),
                Ok(_) => Ok(text),
                Err(e) => Err(format!("cannot read standard input: {e}")),
            };
            sources.push(Source::Read((name, text)));
        } else if path.is_dir() {
            match json_files_in(path) {
                Ok(found) => sources.extend(found.into_iter().map(Source::File)),
                Err(e) => sources.push(Source::Read((
                    name,
                    Err(format!("cannot read the directory: {e}")),
                ))),
            }
        } else {
            sources.push(Source::File(path.clone()));
        }
    }
    sources
}

/// One input's name and text (or why it cannot be read).
pub fn read_source(source: Source) -> Input {
    match source {
        Source::File(path) => {
            let mut reader = Reader::default();
            let text = reader.read(&path).map(str::to_string);
            (path.display().to_string(), text)
        }
        Source::Read(input) => input,
    }
}

/// Reads input files one after another into one buffer, reused from file to file.
#[derive(Debug, Default)]
pub struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    /// The text of the file at `path`, or why it cannot be read (the message [`read_source`] gives).
    pub fn read(&mut self, path: &std::path::Path) -> Result<&str, String> {
        self.fill(path)
            .map_err(|e| format!("cannot read the file: {e}"))
    }

    fn fill(&mut self, path: &std::path::Path) -> io::Result<&str> {
        self.buffer.clear();
        // Through `Take`, which reads into the buffer's spare room until the end, rather than `File`'s own
        // `read_to_end`, which first asks for the file's size and position (two more system calls per file).
        std::fs::File::open(path)?
            .take(u64::MAX)
            .read_to_end(&mut self.buffer)?;
        std::str::from_utf8(&self.buffer).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    }

    /// Read and derive one input offline (as [`derive_one`] does with what [`read_source`] gives).
    pub fn derive(
        &mut self,
        source: Source,
        ctx: &DeriveContext,
        options: &DeriveOptions,
    ) -> FileReport {
        match source {
            Source::File(path) => {
                let text = self.read(&path);
                derive_text(path.display().to_string(), text, ctx, options)
            }
            Source::Read((file, text)) => {
                derive_text(file, text.as_deref().map_err(Clone::clone), ctx, options)
            }
        }
    }
}

/// Read every input ([`sources`], each read in turn).
pub fn read_inputs(files: &[PathBuf], stdin: &mut dyn Read) -> Vec<Input> {
    sources(files, stdin).into_iter().map(read_source).collect()
}

/// The `*.json` files directly in `dir`, sorted.
fn json_files_in(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        // The listing says which entries are plain files without a `stat` each; the others (links) are looked at.
        if entry.file_type().is_ok_and(|kind| kind.is_file()) || path.is_file() {
            files.push(path);
        }
    }
    // By bytes: every path is `dir` joined to a name without `/`, so this is the order of `Path`'s own comparison
    // (component by component), without splitting every path into components at each comparison.
    files.sort_unstable_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(files)
}

/// Parse every input as a task definition (a bare one, or `{"taskDefinition": …}` as describe prints it).
pub fn parse_inputs(inputs: &[Input]) -> Vec<(String, Result<TaskDefinition, String>)> {
    inputs
        .iter()
        .map(|(file, text)| {
            (
                file.clone(),
                parse_input(text.as_deref().map_err(Clone::clone)),
            )
        })
        .collect()
}

/// One input's text parsed as a task definition, or why it cannot be.
fn parse_input(text: Result<&str, String>) -> Result<TaskDefinition, String> {
    text.and_then(|text| TaskDefinition::from_json(text).map_err(|e| e.to_string()))
}

/// What one input file yielded.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file name as given.
    pub file: String,
    /// The derivation, or why the file could not be read as a task definition.
    pub result: Result<(Derivation, Option<PolicyDocument>), String>,
    /// The `unresolved_lookup` findings that only say a secret or parameter was not looked up (offline): text
    /// output counts them in one line instead of listing them. Empty when the look-ups were made.
    pub not_looked_up: Vec<Finding>,
}

impl FileReport {
    /// A report of a derivation (its policy compiled), or of why there is none.
    pub fn new(
        file: String,
        derivation: Result<Derivation, String>,
        not_looked_up: Vec<Finding>,
    ) -> FileReport {
        let result = derivation.map(|derivation| {
            let doc = derive::policy_for(&derivation.requirements);
            (derivation, doc)
        });
        FileReport {
            file,
            result,
            not_looked_up,
        }
    }

    /// The findings to list one by one in text (all of them but the ones counted as not looked up).
    fn listed_findings(&self) -> impl Iterator<Item = &Finding> {
        self.result
            .iter()
            .flat_map(|(d, _)| d.findings.iter())
            .filter(|f| !self.not_looked_up.contains(f))
    }
}

/// Derive every input offline (no look-up made). `inputs` are (file name, file text or read error).
pub fn derive_files(
    inputs: &[Input],
    ctx: &DeriveContext,
    options: &DeriveOptions,
) -> Vec<FileReport> {
    inputs
        .iter()
        .map(|input| derive_one(input, ctx, options))
        .collect()
}

/// Derive one input offline (no look-up made).
pub fn derive_one(input: &Input, ctx: &DeriveContext, options: &DeriveOptions) -> FileReport {
    let (file, text) = input;
    derive_text(
        file.clone(),
        text.as_deref().map_err(Clone::clone),
        ctx,
        options,
    )
}

/// Derive the text of the input `file` (or report why it could not be read) offline.
fn derive_text(
    file: String,
    text: Result<&str, String>,
    ctx: &DeriveContext,
    options: &DeriveOptions,
) -> FileReport {
    match parse_input(text) {
        Ok(td) => {
            let mut derivation = derive::required_permissions(&td, ctx, options, &Facts::new());
            // The report keeps them (the derivation's copy is read by nothing after this).
            let not_looked_up = std::mem::take(&mut derivation.not_looked_up);
            FileReport::new(file, Ok(derivation), not_looked_up)
        }
        Err(error) => FileReport::new(file, Err(error), Vec::new()),
    }
}

/// The one line that stands for `count` secrets and parameters that were not looked up.
pub fn not_looked_up_line(count: usize) -> String {
    let what = if count == 1 {
        "1 secret or parameter was".to_string()
    } else {
        format!("{count} secrets and parameters were")
    };
    format!("{what} not looked up, so kms:Decrypt is undecided; --online decides it")
}

/// Whether any file could not be read as a task definition.
pub fn has_errors(reports: &[FileReport]) -> bool {
    reports.iter().any(|r| r.result.is_err())
}

/// Human-readable report.
pub fn render_text(reports: &[FileReport]) -> String {
    let mut out = Vec::new();
    write_text(reports, &mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("the report is UTF-8")
}

/// Write the human-readable report to `out`, one file at a time.
pub fn write_text<R: Borrow<FileReport>>(
    reports: impl IntoIterator<Item = R>,
    out: &mut dyn Write,
) -> io::Result<()> {
    reports
        .into_iter()
        .try_for_each(|report| write_text_report(report.borrow(), out))
}

/// One file's part of the human-readable report.
fn write_text_report(report: &FileReport, out: &mut dyn Write) -> io::Result<()> {
    let (derivation, doc) = match &report.result {
        Err(error) => return writeln!(out, "== {}\n    error: {error}\n", report.file),
        Ok(ok) => ok,
    };
    writeln!(out, "== {}: {}", report.file, derivation.task_definition)?;
    writeln!(
        out,
        "execution role: {}",
        derivation.execution_role_arn.as_deref().unwrap_or("(none)")
    )?;
    if derivation.requirements.is_empty() {
        writeln!(out, "needs: nothing from the execution role")?;
    } else {
        writeln!(out, "needs:")?;
    }
    for requirement in &derivation.requirements {
        let permission = &requirement.permission;
        writeln!(
            out,
            "    + {} on {}",
            permission.action, permission.resource
        )?;
        for (operator, keys) in &permission.conditions {
            for (key, values) in keys {
                writeln!(out, "        if {operator} {key} = {}", values.join(" | "))?;
            }
        }
        for reason in &requirement.reasons {
            writeln!(
                out,
                "        because container {} {}",
                reason.container, reason.field
            )?;
        }
    }
    if !derivation.findings.is_empty() {
        writeln!(out, "findings:")?;
        for finding in report.listed_findings() {
            writeln!(out, "    ! {finding}")?;
        }
        if !report.not_looked_up.is_empty() {
            writeln!(
                out,
                "    ! {}",
                not_looked_up_line(report.not_looked_up.len())
            )?;
        }
    }
    if let Some(doc) = doc {
        // `iam_size` is the character count of this text: counted here rather than written twice.
        let json = doc.to_json();
        writeln!(
            out,
            "policy ({} of {INLINE_POLICY_LIMIT} characters):\n{json}",
            json.chars().count()
        )?;
    }
    writeln!(out)
}

/// JSON report (schema 1), every object's keys sorted:
///
/// ```text
/// { "files": [ { "error": null | "<why>", "execution_role_arn", "file",
///   "findings": [ { "blocking", "container", "field", "holds_back", "kind", "message", "task_definition" } ],
///   "policy": <IAM policy document> | null, "policy_size": n,
///   "requirements": [ { "action", "conditions", "reasons": [ { "container", "field", "task_definition" } ], "resource" } ],
///   "role": { "account", "name" } | null, "task_definition" } ], "schema": 1 }
/// ```
///
/// A file that could not be read has only `"error"` and `"file"`. As a `Value`, for tests and callers that
/// inspect it; [`write_json`] writes the same document without building it.
pub fn render_json(reports: &[FileReport]) -> Value {
    serde_json::to_value(JsonReport(JsonFiles(RefCell::new(Some(reports.iter())))))
        .expect("the JSON report always serialises: every map key is a string")
}

/// Write the JSON report ([`render_json`]'s document, pretty-printed, then a newline) to `out`, serialising one
/// file's report at a time straight from the report types.
pub fn write_json<R: Borrow<FileReport>>(
    reports: impl IntoIterator<Item = R>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, Pretty::default());
    let files = JsonFiles(RefCell::new(Some(reports.into_iter())));
    JsonReport(files)
        .serialize(&mut serializer)
        .map_err(io::Error::other)?;
    writeln!(out)
}

/// serde_json's `PrettyFormatter` (two spaces per level), each line break written with its indentation in one
/// piece rather than one write per level.
#[derive(Default)]
struct Pretty {
    level: usize,
    has_value: bool,
}

/// A comma, a line break and the indentation of the deepest level written in one piece.
const LINE_BREAK: [u8; 2 + 2 * 32] = {
    let mut line = [b' '; 2 + 2 * 32];
    line[0] = b',';
    line[1] = b'\n';
    line
};

impl Pretty {
    /// A line break (after a comma when `comma`) and the current indentation.
    fn line_break<W: ?Sized + Write>(&self, out: &mut W, comma: bool) -> io::Result<()> {
        let start = usize::from(!comma);
        match LINE_BREAK.get(start..2 + 2 * self.level) {
            Some(line) => out.write_all(line),
            None => {
                out.write_all(&LINE_BREAK[start..2])?;
                (0..self.level).try_for_each(|_| out.write_all(b"  "))
            }
        }
    }

    fn begin<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn end<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.line_break(out, false)?;
        }
        out.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.begin(out, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.end(out, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.line_break(out, !first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.begin(out, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.end(out, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.line_break(out, !first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// The JSON report as a streaming [`Serialize`]: `files`, then `schema`.
struct JsonReport<I>(JsonFiles<I>);

impl<I: Iterator<Item = R>, R: Borrow<FileReport>> Serialize for JsonReport<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("files", &self.0)?;
        map.serialize_entry("schema", &1)?;
        map.end()
    }
}

/// The `files` array, each element derived (when the iterator is lazy) and written in turn; it can be serialised
/// once.
struct JsonFiles<I>(RefCell<Option<I>>);

impl<I: Iterator<Item = R>, R: Borrow<FileReport>> Serialize for JsonFiles<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let reports = self.0.borrow_mut().take().into_iter().flatten();
        serializer.collect_seq(reports.map(FileJson))
    }
}

/// One file's element of the JSON report.
struct FileJson<R>(R);

impl<R: Borrow<FileReport>> Serialize for FileJson<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let report = self.0.borrow();
        let (d, doc) = match &report.result {
            Err(error) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("error", error)?;
                map.serialize_entry("file", &report.file)?;
                return map.end();
            }
            Ok(ok) => ok,
        };
        let mut map = serializer.serialize_map(Some(9))?;
        map.serialize_entry("error", &None::<&str>)?;
        map.serialize_entry("execution_role_arn", &d.execution_role_arn)?;
        map.serialize_entry("file", &report.file)?;
        map.serialize_entry("findings", &Each(&d.findings, FindingJson))?;
        map.serialize_entry("policy", &doc.as_ref().map(PolicyDocument::sorted_keys))?;
        map.serialize_entry("policy_size", &doc.as_ref().map_or(0, policy::iam_size))?;
        map.serialize_entry(
            "requirements",
            &Each(&d.requirements, RequirementJson::from),
        )?;
        map.serialize_entry("role", &d.role)?;
        map.serialize_entry("task_definition", &d.task_definition)?;
        map.end()
    }
}

/// A slice written as a JSON array, each item through `F`.
struct Each<'a, T, F>(&'a [T], F);

impl<'a, T, F, J> Serialize for Each<'a, T, F>
where
    F: Fn(&'a T) -> J,
    J: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(&self.1))
    }
}

/// Only the policy documents, one minified document per line, for files that need any.
pub fn render_policies(reports: &[FileReport]) -> String {
    let mut out = Vec::new();
    write_policies(reports, &mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("the policies are UTF-8")
}

/// Write the policy documents to `out`, one minified document per line.
pub fn write_policies<R: Borrow<FileReport>>(
    reports: impl IntoIterator<Item = R>,
    out: &mut dyn Write,
) -> io::Result<()> {
    reports.into_iter().try_for_each(|r| {
        match r
            .borrow()
            .result
            .as_ref()
            .ok()
            .and_then(|(_, doc)| doc.as_ref())
        {
            Some(doc) => writeln!(out, "{}", doc.to_json()),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(text: &str) -> Vec<Input> {
        vec![("td.json".to_string(), Ok(text.to_string()))]
    }

    const TD: &str = r#"{"taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/web:1",
        "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec","family":"web","revision":1,
        "containerDefinitions":[{"name":"web","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"}]}"#;

    #[test]
    fn text_json_and_policy_outputs_agree() {
        let reports = derive_files(
            &inputs(TD),
            &DeriveContext::default(),
            &DeriveOptions::default(),
        );
        let text = render_text(&reports);
        assert!(
            text.contains(
                "+ ecr:BatchGetImage on arn:aws:ecr:us-east-1:123456789012:repository/web"
            ),
            "{text}"
        );
        assert!(
            text.contains("because container web containerDefinitions[0].image"),
            "{text}"
        );
        let json = render_json(&reports);
        assert_eq!(json["files"][0]["role"]["name"], "app-exec");
        assert_eq!(
            json["files"][0]["requirements"].as_array().unwrap().len(),
            4
        );
        let policy_line = render_policies(&reports);
        let doc = PolicyDocument::parse(policy_line.trim()).unwrap();
        let size = format!(
            "policy ({} of {INLINE_POLICY_LIMIT} characters)",
            policy::iam_size(&doc)
        );
        assert!(text.contains(&size), "{text}");
        assert_eq!(
            json["files"][0]["policy"],
            serde_json::from_str::<Value>(&doc.to_json()).unwrap()
        );
    }

    #[test]
    fn unreadable_files_are_reported_and_the_others_still_derived() {
        let mut all = inputs(TD);
        all.push(("bad.json".into(), Ok("{".into())));
        all.push(("missing.json".into(), Err("No such file".into())));
        let reports = derive_files(&all, &DeriveContext::default(), &DeriveOptions::default());
        assert!(has_errors(&reports));
        assert!(reports[0].result.is_ok());
        let text = render_text(&reports);
        assert!(
            text.contains("== bad.json\n    error: not valid JSON"),
            "{text}"
        );
        assert!(
            text.contains("== missing.json\n    error: No such file"),
            "{text}"
        );
    }

    const WITH_SECRETS: &str = r#"{"taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/web:1",
        "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec","family":"web","revision":1,
        "containerDefinitions":[{"name":"web","image":"nginx","secrets":[
            {"name":"A","valueFrom":"arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf"},
            {"name":"B","valueFrom":"/app/b"}]}]}"#;

    #[test]
    fn secrets_not_looked_up_are_one_line_in_text_and_kept_in_json() {
        let reports = derive_files(
            &inputs(WITH_SECRETS),
            &DeriveContext::default(),
            &DeriveOptions::default(),
        );
        assert_eq!(reports[0].not_looked_up.len(), 2);
        let text = render_text(&reports);
        assert!(
            text.contains(&format!("    ! {}\n", not_looked_up_line(2))),
            "{text}"
        );
        assert!(!text.contains("[unresolved_lookup]"), "{text}");
        let json = render_json(&reports);
        assert_eq!(json["files"][0]["findings"].as_array().unwrap().len(), 2);
        assert_eq!(
            not_looked_up_line(1),
            "1 secret or parameter was not looked up, so kms:Decrypt is undecided; --online decides it"
        );
    }

    #[test]
    fn streamed_json_is_byte_identical_to_the_whole_document() {
        let mut all = inputs(TD);
        all.extend(inputs(WITH_SECRETS));
        all.push(("bad.json".into(), Ok("{".into())));
        for reports in [
            Vec::new(),
            derive_files(&all, &DeriveContext::default(), &DeriveOptions::default()),
        ] {
            let mut streamed = Vec::new();
            write_json(&reports, &mut streamed).unwrap();
            let whole = serde_json::to_string_pretty(&render_json(&reports)).unwrap() + "\n";
            assert_eq!(String::from_utf8(streamed).unwrap(), whole);
        }
    }

    /// A task definition whose report has every kind of JSON value: conditions (rule 1c), reasons, findings
    /// with and without a scope held back, a policy with a `Condition` block, and no `taskDefinitionArn`.
    const SHAPED: &str = r#"{"executionRoleArn":"arn:aws:iam::123456789012:role/app-exec","family":"web",
        "containerDefinitions":[{"name":"web","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1",
        "secrets":[{"name":"A","valueFrom":"arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf"},
            {"name":"B","valueFrom":"/app/b"}]}]}"#;

    #[test]
    fn json_report_shape_and_key_order_are_pinned() {
        let options = DeriveOptions {
            vpc_endpoint: crate::derive::VpcEndpointCondition {
                source_vpce: vec!["vpce-1".into()],
                source_vpc: Vec::new(),
            },
            ..DeriveOptions::default()
        };
        let ctx = DeriveContext {
            account: None,
            region: Some("us-east-1".into()),
        };
        let no_role = SHAPED.replace(
            r#""executionRoleArn":"arn:aws:iam::123456789012:role/app-exec","#,
            "",
        );
        let all = vec![
            ("shaped.json".to_string(), Ok(SHAPED.to_string())),
            ("no-role.json".into(), Ok(no_role)),
            ("bad.json".into(), Err("No such file".into())),
        ];
        let reports = derive_files(&all, &ctx, &options);
        let mut out = Vec::new();
        write_json(&reports, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            include_str!("../tests/fixtures/derive-report-shape.json")
        );
    }

    #[test]
    fn the_pretty_formatter_writes_what_serde_jsons_does_at_any_depth() {
        let mut deep = serde_json::json!({"a": [1, {"b": []}, {}], "c": "d"});
        for _ in 0..40 {
            deep = serde_json::json!({"x": [deep, 2, {"y": null}], "z": {}});
        }
        let mut ours = Vec::new();
        deep.serialize(&mut serde_json::Serializer::with_formatter(
            &mut ours,
            Pretty::default(),
        ))
        .unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string_pretty(&deep).unwrap()
        );
    }

    #[test]
    fn inputs_come_from_files_directories_and_stdin_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), TD).unwrap();
        std::fs::write(dir.path().join("a.json"), TD).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a task definition").unwrap();
        let paths = vec![
            dir.path().to_path_buf(),
            PathBuf::from(STDIN),
            PathBuf::from(STDIN),
        ];
        let read = read_inputs(&paths, &mut TD.as_bytes());
        let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names[0].ends_with("a.json") && names[1].ends_with("b.json"));
        assert_eq!(read[2], ("-".to_string(), Ok(TD.to_string())));
        assert!(read[3].1.as_ref().unwrap_err().contains("only once"));
    }
}
