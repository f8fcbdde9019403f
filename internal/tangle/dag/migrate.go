package dag

import (
	"context"
	"database/sql"
	"embed"

	"github.com/tanglemail/tanglemail/internal/sqlitedb"
)

// migrationFS holds the numbered schema migrations, NNNN_name.sql, applied in order.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// schema is the block store's migrations, applied by package sqlitedb.
var schema = sqlitedb.Schema{FS: migrationFS, Dir: "migrations", TooNew: ErrSchema}

// SchemaVersion is the schema version this program writes: the number of the last embedded migration.
func SchemaVersion() int { return schema.Version() }

// migrate brings the schema up to date in one IMMEDIATE transaction: either every pending migration
// is applied and recorded in schema_version, or none is. A file whose schema is newer than this
// program's fails with ErrSchema and is left untouched.
func migrate(ctx context.Context, conn *sql.Conn) error {
	_, err := sqlitedb.Migrate(ctx, conn, schema)
	return err
}
