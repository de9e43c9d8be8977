//! Several replicas (`coordination:`): the DynamoDB lease table adapter against the emulator, and real
//! `execrole run` processes sharing one estate through it.

use std::collections::BTreeMap;
use std::sync::Arc;

use execrole::aws::LeaseItem;
use execrole::metrics::Metrics;

use crate::support::Moto;

/// The lease table the tests use.
pub const TABLE: &str = "execrole-leases";

/// Create the lease table (partition key `lease`, a string, on demand) as the CloudFormation stack does.
pub async fn create_table(moto: &Moto) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("lease")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("lease")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create the lease table");
}

fn coordination() -> execrole::config::Coordination {
    execrole::config::Coordination {
        dynamodb_table: TABLE.into(),
        region: None,
        lease_duration: std::time::Duration::from_secs(3),
        shards: 4,
        replica_id: "test".into(),
        clock_skew_margin: std::time::Duration::from_millis(600),
    }
}

fn lease(holder: &str, expires_ms: u64, counter: u64) -> LeaseItem {
    LeaseItem {
        key: "shard#0".into(),
        holder: holder.into(),
        expires_ms,
        counter,
    }
}

#[tokio::test]
async fn the_dynamodb_lease_table_writes_only_when_its_conditions_hold() {
    let moto = Moto::start();
    create_table(&moto).await;
    let metrics = Arc::new(Metrics::new());
    let table = moto
        .factory(metrics.clone())
        .await
        .lease_table(&coordination());

    assert!(
        table
            .acquire(&lease("a", 10_000, 1), 5_000, None)
            .await
            .unwrap()
    );
    assert!(
        !table
            .acquire(&lease("b", 20_000, 1), 5_000, None)
            .await
            .unwrap(),
        "taken"
    );
    assert!(
        !table
            .acquire(&lease("b", 20_000, 2), 9_000, Some(1))
            .await
            .unwrap(),
        "not ended yet at 9 s"
    );
    assert!(table.renew("shard#0", "a", 1, 9_000, 12_000).await.unwrap());
    assert!(
        !table.renew("shard#0", "b", 1, 9_000, 12_000).await.unwrap(),
        "not b's"
    );
    assert!(
        !table.renew("shard#0", "a", 2, 9_000, 12_000).await.unwrap(),
        "not this term"
    );
    assert!(
        !table
            .renew("shard#0", "a", 1, 12_001, 15_000)
            .await
            .unwrap(),
        "a renewal after the end writes nothing"
    );
    assert!(
        !table
            .acquire(&lease("b", 20_000, 2), 12_001, Some(0))
            .await
            .unwrap(),
        "another counter was seen"
    );
    assert!(
        table
            .acquire(&lease("b", 20_000, 2), 12_001, Some(1))
            .await
            .unwrap()
    );
    assert!(
        !table.release("shard#0", "a", 1).await.unwrap(),
        "a no longer holds it"
    );
    assert!(table.release("shard#0", "b", 2).await.unwrap());

    table.heartbeat("a", 30_000).await.unwrap();
    let mut items = table.scan().await.unwrap();
    items.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(
        items,
        vec![
            LeaseItem {
                key: "replica#a".into(),
                holder: "a".into(),
                expires_ms: 30_000,
                counter: 0
            },
            lease("b", 0, 2),
        ],
        "a release keeps the counter"
    );
    table.retire("a").await.unwrap();
    assert_eq!(table.scan().await.unwrap().len(), 1);

    assert!(table.grace("111111111111").await.unwrap().is_empty());
    let grace = BTreeMap::from([(
        "arn:aws:ecs:us-east-1:111111111111:task-definition/a:1".to_string(),
        42,
    )]);
    table.store_grace("111111111111", &grace).await.unwrap();
    assert_eq!(table.grace("111111111111").await.unwrap(), grace);
    assert_eq!(
        table.scan().await.unwrap().len(),
        1,
        "grace items are not leases"
    );
    assert!(metrics.aws_requests("dynamodb", "UpdateItem", "success") >= 2);
}
