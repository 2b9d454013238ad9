package replica

import (
	"context"
	"fmt"
	"log/slog"
)

// raftLogger adapts slog to raft.Logger. Raft's Info is chatty (every
// election step), so it logs at debug; warnings and errors pass through.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...interface{}) { r.log(slog.LevelDebug, fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...interface{}) {
	r.log(slog.LevelDebug, fmt.Sprintf(format, v...))
}
func (r raftLogger) Info(v ...interface{}) { r.log(slog.LevelDebug, fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...interface{}) {
	r.log(slog.LevelDebug, fmt.Sprintf(format, v...))
}
func (r raftLogger) Warning(v ...interface{}) { r.log(slog.LevelWarn, fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...interface{}) {
	r.log(slog.LevelWarn, fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...interface{}) { r.log(slog.LevelError, fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...interface{}) {
	r.log(slog.LevelError, fmt.Sprintf(format, v...))
}
func (r raftLogger) Fatal(v ...interface{})                 { r.fatal(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...interface{}) { r.fatal(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...interface{})                 { r.fatal(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...interface{}) { r.fatal(fmt.Sprintf(format, v...)) }

func (r raftLogger) log(level slog.Level, msg string) {
	r.l.Log(context.Background(), level, "raft: "+msg)
}

func (r raftLogger) fatal(msg string) {
	r.l.Error("raft: " + msg)
	panic("raft: " + msg)
}
