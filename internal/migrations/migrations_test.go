package migrations

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadOrdersByVersion(t *testing.T) {
	fsys := fstest.MapFS{
		"schema/0002_rooms.sql":  {Data: []byte("CREATE TABLE rooms (x);")},
		"schema/0010_index.sql":  {Data: []byte("CREATE INDEX i ON rooms (x);")},
		"schema/0001_init.sql":   {Data: []byte("CREATE TABLE messages (x);")},
		"schema/README.md":       {Data: []byte("not a step")},
		"schema/old/0003_x.sql":  {Data: []byte("in a subdirectory")},
		"elsewhere/0004_not.sql": {Data: []byte("another directory")},
	}
	got, err := Load(fsys, "schema")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []Step{
		{Version: 1, Name: "0001_init", SQL: "CREATE TABLE messages (x);"},
		{Version: 2, Name: "0002_rooms", SQL: "CREATE TABLE rooms (x);"},
		{Version: 10, Name: "0010_index", SQL: "CREATE INDEX i ON rooms (x);"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
}

func TestLoadRejects(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files []string
		want  string
	}{
		{"no number", []string{"0001_init.sql", "init.sql"}, "schema/init.sql: name must start with its number"},
		{"number not first", []string{"init_0002.sql"}, "schema/init_0002.sql: name must start with its number"},
		{"duplicate version", []string{"0001_a.sql", "0001_b.sql"}, "schema/0001_b.sql: version 1 does not follow 0001_a"},
		{"names out of version order", []string{"0010_a.sql", "9_b.sql"}, "schema/9_b.sql: version 9 does not follow 0010_a"},
		{"empty dir", []string{"notes.txt"}, "no .sql files in schema"},
		{"missing dir", nil, "schema"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys["schema/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			steps, err := Load(fsys, "schema")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%q) = %+v, %v; want an error containing %q", tt.files, steps, err, tt.want)
			}
		})
	}
}
