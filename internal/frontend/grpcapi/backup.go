package grpcapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// RegisterBackup registers the Backup service over b (the auth Guard, which
// lets only cluster admins through).
func RegisterBackup(s *grpc.Server, b kv.Backuper) {
	cairnpb.RegisterBackupServer(s, &backupServer{b: b})
}

type backupServer struct {
	cairnpb.UnimplementedBackupServer
	b kv.Backuper
}

func (s *backupServer) Backup(req *cairnpb.BackupRequest, stream grpc.ServerStreamingServer[cairnpb.BackupChunk]) error {
	return toStatus(s.b.Backup(stream.Context(), req, stream.Send))
}

func (s *backupServer) RestoreBegin(ctx context.Context, req *cairnpb.RestoreBeginRequest) (*cairnpb.RestoreBeginResponse, error) {
	resp, err := s.b.RestoreBegin(ctx, req)
	return resp, toStatus(err)
}

func (s *backupServer) RestoreData(ctx context.Context, req *cairnpb.RestoreDataRequest) (*cairnpb.RestoreDataResponse, error) {
	resp, err := s.b.RestoreData(ctx, req)
	return resp, toStatus(err)
}
