package kv

import "github.com/cairn-db/cairn/api/cairnpb"

// ValidateTableUpdate checks the settings an UpdateTableRequest sets.
func ValidateTableUpdate(u *cairnpb.UpdateTableRequest) error {
	if u.Consistency != nil {
		if _, err := ParseConsistency(*u.Consistency); err != nil {
			return err
		}
	}
	if u.Replicas != nil && (*u.Replicas < 1 || *u.Replicas > MaxReplicas) {
		return Errorf(ErrInvalidArgument, "replicas %d: want 1 to %d voters per range", *u.Replicas, MaxReplicas)
	}
	if u.Learners != nil && *u.Learners > MaxLearners {
		return Errorf(ErrInvalidArgument, "learners %d: at most %d read learners per range", *u.Learners, MaxLearners)
	}
	return ValidateHistory(u.HistoryVersions, u.HistoryRetentionMs)
}

// ApplyTableUpdate sets in t the settings u sets (validated) and keeps the
// others. The linearizable default level is stored as "".
func ApplyTableUpdate(t *cairnpb.Table, u *cairnpb.UpdateTableRequest) {
	if u.Consistency != nil {
		t.Consistency = *u.Consistency
		if t.Consistency == Linearizable {
			t.Consistency = ""
		}
	}
	set := func(dst *uint32, src *uint32) {
		if src != nil {
			*dst = *src
		}
	}
	if u.MaxBytes != nil {
		t.MaxBytes = *u.MaxBytes
	}
	set(&t.MaxWritesPerSec, u.MaxWritesPerSec)
	set(&t.MaxReadsPerSec, u.MaxReadsPerSec)
	set(&t.Replicas, u.Replicas)
	set(&t.Learners, u.Learners)
	if u.HistoryVersions != nil {
		t.HistoryVersions = u.HistoryVersions
	}
	if u.HistoryRetentionMs != nil {
		t.HistoryRetentionMs = u.HistoryRetentionMs
	}
}
