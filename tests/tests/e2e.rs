//! End-to-end tests on a real cluster: a scheduler and two executors as OS processes.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::MemTable;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use pickleball_e2e::{ClusterOptions, TestCluster, bin_dir, local_context};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pickleball-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `rows` rows of generated data as Parquet files into a fresh directory.
async fn write_dataset(name: &str, rows: u64, files: usize) -> String {
    let dir = temp_dir(name);
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(files),
    );
    let df = ctx
        .sql(&format!(
            "select v, v % 97 as k, cast(v as double) * 1.5 as x, \
             concat('s', cast(v % 13 as varchar)) as s \
             from generate_series(1, {rows}) as t(v)"
        ))
        .await
        .unwrap()
        .repartition(datafusion::logical_expr::Partitioning::RoundRobinBatch(
            files,
        ))
        .unwrap();
    df.write_parquet(dir.to_str().unwrap(), DataFrameWriteOptions::new(), None)
        .await
        .unwrap();
    format!("{}/", dir.display())
}

/// The result as sorted text lines, so row order does not matter.
fn sorted_text(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

async fn run(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("planning {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("running {sql}: {e}"));
    sorted_text(&batches)
}

const QUERIES: &[&str] = &[
    "select count(*) as n, sum(v) as total from t",
    "select k, count(*) as n, sum(x) as sx, min(s) as smin from t group by k",
    "select s, avg(x) as ax from t where v % 3 = 0 group by s having count(*) > 10",
    "select a.k, count(*) as n from t a join t b on a.v = b.v + 1 group by a.k",
    "select v, x from t order by x desc, v limit 7",
    "select k, v, rank() over (partition by k order by v desc) as r from t where v < 500",
    "select distinct s from t",
    "select k from t where v < 50 union all select k + 1000 from t where v > 199990",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_on_two_executor_processes_matches_local_datafusion() {
    let cluster = TestCluster::start(ClusterOptions::default());
    let path = write_dataset("sql", 200_000, 4).await;
    let remote = cluster.client().await;
    let local = local_context();
    for ctx in [&remote, &local] {
        ctx.register_parquet("t", &path, ParquetReadOptions::default())
            .await
            .unwrap();
    }
    for sql in QUERIES {
        assert_eq!(
            run(&remote, sql).await,
            run(&local, sql).await,
            "query: {sql}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_tables_travel_inside_the_plan() {
    let cluster = TestCluster::start(ClusterOptions {
        executors: 1,
        ..Default::default()
    });
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(StringArray::from(vec![
                Some("a"),
                None,
                Some("c"),
                Some("a"),
            ])),
        ],
    )
    .unwrap();
    let remote = cluster.client().await;
    let local = local_context();
    for ctx in [&remote, &local] {
        let table = MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).unwrap();
        ctx.register_table("m", Arc::new(table)).unwrap();
    }
    let sql = "select name, sum(id) as total from m group by name";
    assert_eq!(run(&remote, sql).await, run(&local, sql).await);
}

#[test]
fn the_scheduler_binary_does_not_link_python() {
    let ldd = |binary: &str| {
        let out = std::process::Command::new("ldd")
            .arg(bin_dir().join(binary))
            .output()
            .unwrap();
        assert!(out.status.success(), "ldd {binary} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let scheduler = ldd("pickleball-scheduler");
    assert!(
        scheduler.contains("libc.so"),
        "unexpected ldd output: {scheduler}"
    );
    assert!(!scheduler.contains("libpython"), "{scheduler}");
    assert!(ldd("pickleball-executor").contains("libpython"));
}

#[test]
fn an_unreachable_scheduler_makes_an_executor_fail_with_the_address() {
    let port = pickleball_e2e::free_port();
    let out = std::process::Command::new(bin_dir().join("pickleball-executor"))
        .args([
            "--scheduler-host=127.0.0.1".to_string(),
            format!("--scheduler-port={port}"),
            "--scheduler-connect-timeout-seconds=1".to_string(),
            "--health-port=0".to_string(),
            format!("--port={}", pickleball_e2e::free_port()),
            format!("--grpc-port={}", pickleball_e2e::free_port()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&port.to_string()), "{stderr}");
}

#[test]
fn a_failing_test_leaks_no_cluster_processes() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let cluster = TestCluster::start(ClusterOptions {
            executors: 1,
            ..Default::default()
        });
        tx.send(cluster.pids()).unwrap();
        panic!("a test failing while its cluster runs");
    })
    .join();
    assert!(outcome.is_err(), "the thread was meant to panic");
    let pids = rx.recv().unwrap();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        // Dropping the cluster killed and reaped each process, so its /proc entry is gone.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} leaked"
        );
    }
}
