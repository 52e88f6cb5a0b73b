//! Shared test helpers: a database that exists for one test only.
#![allow(dead_code)]

use sqlx::Connection;

fn admin_url() -> String {
    std::env::var("PROCURE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test only.
pub(crate) struct TestDb {
    pub(crate) url: String,
    pg_name: Option<String>,
    _dir: Option<std::path::PathBuf>,
}

impl TestDb {
    pub(crate) async fn sqlite() -> TestDb {
        let dir =
            std::env::temp_dir().join(format!("procure-store-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TestDb {
            url: format!("sqlite://{}", dir.join("app.db").display()),
            pg_name: None,
            _dir: Some(dir),
        }
    }

    pub(crate) async fn postgres() -> TestDb {
        let name = format!("procure_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL must answer for the store tests");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin_url();
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        TestDb {
            url,
            pg_name: Some(name),
            _dir: None,
        }
    }

    pub(crate) async fn drop_db(self) {
        if let Some(name) = self.pg_name {
            let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        if let Some(dir) = self._dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
