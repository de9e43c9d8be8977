//! Rows 10 and 11: files the ECS agent reads from S3 with the execution role: `environmentFiles[]` of type `s3`
//! and a FireLens router's `config-file-type: s3` configuration file. Each needs `s3:GetObject` on
//! `arn:P:s3:::bucket/key` and `s3:GetBucketLocation` on `arn:P:s3:::bucket` (the bucket is the text before the
//! first `/`). Fargate only supports `config-file-type: file`: an S3 config file there is reported (and still
//! granted, so the task works wherever it can run).
//!
//! Not here: the FireLens router's *output* permissions (firehose, kinesis, …), which belong to the task role and
//! are never derived; credential specs in S3 (`credspec.rs`, which reuses [`parse_s3_object`]).

use super::references::{RefError, check_placeholder};
use super::site::{Site, report};
use super::{FindingKind, Needs};
use crate::model::{Arn, ContainerDefinition, TaskDefinition, partition_for_region};
use crate::policy::Permission;

/// An S3 object named by `arn:P:s3:::bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Object {
    pub partition: String,
    pub bucket: String,
    pub key: String,
}

/// The partitions an S3 ARN may name when the task's Region is unknown.
const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

/// Parse an S3 object ARN. `task_region`, when known, decides the partition the ARN must be in.
pub(crate) fn parse_s3_object(text: &str, task_region: Option<&str>) -> Result<S3Object, RefError> {
    check_placeholder(text)?;
    let invalid = |why: &str| {
        Err(RefError::Invalid(format!(
            "`{text}` is not an S3 object ARN (`arn:P:s3:::bucket/key`): {why}"
        )))
    };
    let Ok(arn) = Arn::parse(text) else {
        return invalid("not an ARN");
    };
    if arn.service != "s3" || !arn.region.is_empty() || !arn.account.is_empty() {
        return invalid("it must be `arn:P:s3:::bucket/key`, with no Region or account");
    }
    match task_region {
        Some(region) if partition_for_region(region) != arn.partition => {
            return invalid(&format!(
                "the task's Region {region} is not in partition `{}`",
                arn.partition
            ));
        }
        None if !PARTITIONS.contains(&arn.partition.as_str()) => {
            return invalid("unknown partition");
        }
        _ => {}
    }
    let Some((bucket, key)) = arn.resource.split_once('/') else {
        return invalid("it names a bucket but no object key");
    };
    if !is_bucket_name(bucket) {
        return invalid(&format!("`{bucket}` is not a valid bucket name"));
    }
    if key.is_empty() {
        return invalid("the object key is empty");
    }
    if key.contains(['*', '?']) {
        return invalid("the object key holds `*` or `?`, which IAM would read as wildcards");
    }
    Ok(S3Object {
        partition: arn.partition,
        bucket: bucket.to_string(),
        key: key.to_string(),
    })
}

/// Bucket names: 3–63 of lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit.
fn is_bucket_name(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// `s3:GetObject` on the object and `s3:GetBucketLocation` on its bucket.
pub(crate) fn grant_object(object: &S3Object, site: &Site, needs: &mut Needs) {
    let bucket = format!("arn:{}:s3:::{}", object.partition, object.bucket);
    needs.grant(
        Permission::new("s3:GetObject", format!("{bucket}/{}", object.key)),
        &site.container,
        &site.field,
    );
    needs.grant(
        Permission::new("s3:GetBucketLocation", bucket),
        &site.container,
        &site.field,
    );
}

/// Row 10 for one container.
pub(crate) fn environment_files(container: &ContainerDefinition, needs: &mut Needs) {
    let region = needs.scope.region.clone();
    for file in &container.environment_files {
        let site = Site::of(
            container,
            format_args!("environmentFiles[{}].value", file.index),
        );
        match file.kind.as_deref() {
            Some("s3") => {}
            kind => {
                let field =
                    container.field_path(format_args!("environmentFiles[{}].type", file.index));
                needs.find(
                    FindingKind::InvalidReference,
                    Some(&site.container),
                    Some(&field),
                    format!(
                        "environment file type {kind:?} is not `s3`, the only type ECS supports"
                    ),
                );
                continue;
            }
        }
        let Some(value) = file.value.as_deref() else {
            needs.find(
                FindingKind::InvalidReference,
                Some(&site.container),
                Some(&site.field),
                "the environment file has no value; tasks will fail to start",
            );
            continue;
        };
        match parse_s3_object(value, region.as_deref()) {
            Ok(object) => grant_object(&object, &site, needs),
            Err(err) => report(err, &site, needs),
        }
    }
}

/// Row 11 for one container: a FireLens router configuration file in S3.
pub(crate) fn firelens_config(
    td: &TaskDefinition,
    container: &ContainerDefinition,
    needs: &mut Needs,
) {
    let Some(firelens) = &container.firelens_configuration else {
        return;
    };
    let site = Site::of(container, "firelensConfiguration.options.config-file-value");
    let kind = firelens.options.get("config-file-type").map(String::as_str);
    match kind {
        None | Some("file") => return,
        Some("s3") => {}
        Some(other) => {
            let field = container.field_path("firelensConfiguration.options.config-file-type");
            needs.find(
                FindingKind::InvalidReference,
                Some(&site.container),
                Some(&field),
                format!("config-file-type `{other}` is neither `s3` nor `file`"),
            );
            return;
        }
    }
    let Some(value) = firelens
        .options
        .get("config-file-value")
        .filter(|v| !v.is_empty())
    else {
        needs.find(
            FindingKind::InvalidReference,
            Some(&site.container),
            Some(&site.field),
            "config-file-type is `s3` but config-file-value is missing",
        );
        return;
    };
    let region = needs.scope.region.clone();
    match parse_s3_object(value, region.as_deref()) {
        Ok(object) => grant_object(&object, &site, needs),
        Err(err) => return report(err, &site, needs),
    }
    if td
        .requires_compatibilities
        .iter()
        .any(|c| c.eq_ignore_ascii_case("FARGATE"))
    {
        needs.find(
            FindingKind::UnsupportedConfiguration,
            Some(&site.container),
            Some(&site.field),
            "Fargate only supports config-file-type `file` for FireLens: the S3 configuration file fails there",
        );
    }
}
