package nlreq

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/cnetdev/cnet/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDumpRetriesInterrupted: an interrupted dump is taken again, and its
// partial result is never returned; other errors are returned at once.
func TestDumpRetriesInterrupted(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		fails     int   // interrupted answers before the good one
		other     error // returned instead of the good answer
		wantCalls int
		want      []int
		wantErr   error
	}{
		{name: "complete at once", wantCalls: 1, want: []int{1, 2, 3}},
		{name: "interrupted twice", fails: 2, wantCalls: 3, want: []int{1, 2, 3}},
		{name: "interrupted every time", fails: 1000, wantCalls: DumpRetries, wantErr: netlink.ErrDumpInterrupted},
		{name: "another error", other: boom, wantCalls: 1, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := Dump(func() ([]int, error) {
				calls++
				if calls <= tt.fails {
					return []int{1}, netlink.ErrDumpInterrupted // partial
				}
				if tt.other != nil {
					return nil, tt.other
				}
				return []int{1, 2, 3}, nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls: got %d, want %d", calls, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("result: got %v, want %v", got, tt.want)
			}
		})
	}
}
