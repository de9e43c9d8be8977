//! `EcsApi::task_definitions_in_use` against the emulator: the revisions that services still run, across clusters
//! and `DescribeServices` batches, as ECS returns them.

use std::sync::Arc;

use execrole::metrics::Metrics;

use crate::support::*;

async fn create_cluster(ecs: &aws_sdk_ecs::Client, name: &str) {
    ecs.create_cluster()
        .cluster_name(name)
        .send()
        .await
        .expect("create cluster");
}

/// A service on the EC2 launch type without network configuration (awsvpc without security groups crashes moto).
async fn create_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
    task_definition: &str,
) {
    ecs.create_service()
        .cluster(cluster)
        .service_name(name)
        .task_definition(task_definition)
        .desired_count(1)
        .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
        .send()
        .await
        .expect("create service");
}

async fn register_web(ecs: &aws_sdk_ecs::Client, role: &str) -> String {
    register(
        ecs,
        "web",
        role,
        vec![container("web", &ecr_image("team/web"), None)],
    )
    .await
}

#[tokio::test]
async fn a_deregistered_revision_that_a_service_runs_is_still_in_use() {
    let moto = Moto::start();
    let ecs = moto.ecs(REGION).await;
    let role = create_role(&moto.iam().await, "app-exec").await;
    create_cluster(&ecs, "prod").await;
    let first = register_web(&ecs, &role).await;
    let second = register_web(&ecs, &role).await;
    create_service(&ecs, "prod", "web", &first).await;
    ecs.deregister_task_definition()
        .task_definition(&first)
        .send()
        .await
        .expect("deregister");

    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let (regions, _, _) = factory.clients(&target()).await;
    let api = &regions[0].1;
    let active = api.list_task_definitions_page(None).await.unwrap();
    assert_eq!(active.arns, vec![second], "the first revision is INACTIVE");
    assert_eq!(api.task_definitions_in_use().await.unwrap(), vec![first]);
    for operation in ["ListClusters", "ListServices", "DescribeServices"] {
        assert_eq!(
            metrics.aws_requests("ecs", operation, "success"),
            1,
            "{operation}"
        );
    }
}

#[tokio::test]
async fn services_of_every_cluster_are_described_in_batches_of_ten() {
    let moto = Moto::start();
    let ecs = moto.ecs(REGION).await;
    let role = create_role(&moto.iam().await, "app-exec").await;
    create_cluster(&ecs, "prod").await;
    create_cluster(&ecs, "batch").await;
    let revisions = [
        register_web(&ecs, &role).await,
        register_web(&ecs, &role).await,
        register_web(&ecs, &role).await,
    ];
    for n in 0..11 {
        create_service(&ecs, "prod", &format!("web-{n}"), &revisions[0]).await;
    }
    create_service(&ecs, "batch", "worker", &revisions[1]).await;
    // moto stores an UpdateService revision as given (`web:2`) and leaves the deployments on the old one.
    ecs.update_service()
        .cluster("batch")
        .service("worker")
        .task_definition("web:2")
        .send()
        .await
        .expect("update service");
    // A deleted service runs nothing; moto keeps listing it, as INACTIVE.
    create_service(&ecs, "batch", "retired", &revisions[2]).await;
    ecs.delete_service()
        .cluster("batch")
        .service("retired")
        .force(true)
        .send()
        .await
        .expect("delete service");

    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let (regions, _, _) = factory.clients(&target()).await;
    let in_use = regions[0].1.task_definitions_in_use().await.unwrap();
    let mut expected = vec![
        revisions[0].clone(),
        revisions[1].clone(),
        "web:2".to_string(),
    ];
    expected.sort();
    assert_eq!(in_use, expected);
    assert_eq!(metrics.aws_requests("ecs", "ListServices", "success"), 2);
    assert_eq!(
        metrics.aws_requests("ecs", "DescribeServices", "success"),
        3,
        "eleven services in one cluster take two requests, one service in the other one"
    );
}

#[tokio::test]
async fn a_region_without_clusters_has_nothing_in_use() {
    let moto = Moto::start();
    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let (regions, _, _) = factory.clients(&target()).await;
    assert!(
        regions[0]
            .1
            .task_definitions_in_use()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(metrics.aws_requests("ecs", "ListServices", "success"), 0);
}
