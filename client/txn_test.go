// Goal: Client.Txn and Exec: a transaction reads its own writes, commits
// writes and checks of its reads together, retries when a key it read
// changed or on a conflict, gives up after its attempts, and an error of
// the function writes nothing; concurrent increments of two counters by
// transactions never lose an update nor apply half of one.
// Method: a gRPC server over kvtest.MemService (all-or-nothing Txn),
// fault injection for conflicts.
package client

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairn-db/cairn/internal/kv"
)

func TestTxn(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()

	err := c.Txn(ctx, func(tx *Tx) error {
		tx.Put("default", []byte("a"), []byte("1"))
		v, _, err := tx.Get("default", []byte("a"))
		if err != nil || string(v) != "1" {
			t.Fatalf("own write: %q %v", v, err)
		}
		tx.Delete("default", []byte("b"))
		if _, _, err := tx.Get("default", []byte("b")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("own delete: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := c.Get(ctx, "default", []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("after commit: %q %v", v, err)
	}

	boom := errors.New("boom")
	if err := c.Txn(ctx, func(tx *Tx) error { tx.Put("default", []byte("c"), []byte("x")); return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if _, _, err := c.Get(ctx, "default", []byte("c")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted write visible: %v", err)
	}

	// Conflicts are retried; ten in a row give up.
	var fails atomic.Int64
	fails.Store(3)
	n.svc.SetFail(func(method string, key []byte) error {
		if method == "Txn" && fails.Add(-1) >= 0 {
			return kv.Errorf(kv.ErrTxnConflict, "injected")
		}
		return nil
	})
	runs := 0
	err = c.Txn(ctx, func(tx *Tx) error { runs++; tx.Put("default", []byte("d"), []byte("1")); return nil })
	if err != nil || runs != 4 {
		t.Fatalf("retried txn: %v after %d runs", err, runs)
	}
	fails.Store(100)
	if err := c.Txn(ctx, func(tx *Tx) error { tx.Put("default", []byte("d"), []byte("2")); return nil }); !errors.Is(err, ErrTxnConflict) {
		t.Fatalf("endless conflicts: %v", err)
	}
	n.svc.SetFail(nil)

	// Exec: a failed check changes nothing.
	_, err = c.Exec(ctx, []TxnOp{{Kind: TxnPut, Table: "default", Key: []byte("e"), Value: []byte("1")},
		{Kind: TxnCheck, Table: "default", Key: []byte("a"), IfValue: []byte("not 1")}})
	if !errors.Is(err, ErrConditionFailed) {
		t.Fatalf("failed check: %v", err)
	}
	if _, _, err := c.Get(ctx, "default", []byte("e")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("write of a failed txn visible: %v", err)
	}
}

func TestTxnConcurrentIncrements(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()
	incr := func(tx *Tx, key string) error {
		v, _, err := tx.Get("default", []byte(key))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		i, _ := strconv.Atoi(string(v))
		tx.Put("default", []byte(key), []byte(strconv.Itoa(i+1)))
		return nil
	}
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				err := c.Txn(ctx, func(tx *Tx) error {
					if err := incr(tx, "x"); err != nil {
						return err
					}
					return incr(tx, "y")
				})
				if err == nil {
					ok.Add(1)
				} else if !errors.Is(err, ErrTxnConflict) && !errors.Is(err, ErrConditionFailed) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	x, _, _ := c.Get(ctx, "default", []byte("x"))
	y, _, _ := c.Get(ctx, "default", []byte("y"))
	if string(x) != strconv.Itoa(int(ok.Load())) || string(y) != string(x) {
		t.Fatalf("x=%s y=%s after %d committed increments", x, y, ok.Load())
	}
}
