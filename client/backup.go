package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// Backup streams a consistent backup of every table at one point in time
// (docs/design/backup.md) and calls fn with each chunk: the first names
// the point in time, the tables and the auth state; the others carry a
// table's records in key order. sinceVersion > 0 asks for an incremental
// backup (values only of keys changed after it). Needs cluster admin.
//
// A stream that breaks after the first chunk is not retried on another
// node (the chunks would repeat): the error is returned and the caller
// starts again.
func (c *Client) Backup(ctx context.Context, sinceVersion uint64, fn func(*cairnpb.BackupChunk) error) error {
	received := 0
	return c.do(ctx, read, func(ctx context.Context, ep *endpoint) error {
		stream, err := ep.backup.Backup(ctx, &cairnpb.BackupRequest{SinceVersion: sinceVersion})
		if err != nil {
			return err
		}
		for {
			chunk, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				if received > 0 {
					e, _ := fromStatus(err, ep.addr)
					return fmt.Errorf("backup stream from %s broke after %d chunks: %w", ep.addr, received, e)
				}
				return err
			}
			received++
			if err := fn(chunk); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
		}
	})
}

// RestoreBegin creates the tables of a backup and imports its auth
// records into an empty cluster. Needs cluster admin.
func (c *Client) RestoreBegin(ctx context.Context, req *cairnpb.RestoreBeginRequest) error {
	return c.do(ctx, write, func(ctx context.Context, ep *endpoint) error {
		_, err := ep.backup.RestoreBegin(ctx, req)
		return err
	})
}

// RestoreData writes records of a backup (sorted stored keys of table,
// with values) with their versions and expiry; it returns how many were
// written (expired ones are not). Safe to repeat. Needs cluster admin.
func (c *Client) RestoreData(ctx context.Context, table string, recs []*cairnpb.BackupRecord) (uint64, error) {
	var n uint64
	err := c.do(ctx, read, func(ctx context.Context, ep *endpoint) error {
		resp, err := ep.backup.RestoreData(ctx, &cairnpb.RestoreDataRequest{Table: table, Records: recs})
		if err != nil {
			return err
		}
		n = resp.Restored
		return nil
	})
	return n, err
}
