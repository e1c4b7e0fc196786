package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// CnetFigures are the measurements of cnet alone.
type CnetFigures struct {
	// Bulk is how many containers the parallel and bulk figures use.
	Bulk, Workers int
	// SequentialRate is containers/s for the cnet-cli run's containers
	// 1..max, one process after another.
	SequentialRate float64
	// ParallelRate is containers/s for Bulk creates from Workers parallel
	// workers, once per round.
	ParallelRate []float64
	// RmAll is one `cnet rm` naming Bulk containers; NetRmForce is one
	// `cnet network rm --force` with Bulk containers attached.
	RmAll, NetRmForce time.Duration
	// RSS1 and RSSMax are the peak RSS in KiB of the `cnet create` of the
	// first and the last container (N=1 and the largest N).
	RSS1, RSSMax int64
	RSSN         int
	// DBBytes is the size of state.db with the largest N containers.
	DBBytes int64
	// Err* say why a figure is missing.
	ParallelErr, RmAllErr, NetRmErr, MemErr string
}

// parallelCreate creates names from workers goroutines, each spawning
// `cnet create` processes, and returns containers per second.
func parallelCreate(c *cnetCLI, names []string, workers int) (float64, error) {
	work := make(chan string)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := c.create(slot{name: name}); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(len(names)) / elapsed.Seconds(), nil
}

// measureCnetBulk fills in the parallel-create and bulk-removal figures:
// round 1 creates Bulk containers in parallel and removes them with one
// `cnet rm`; round 2 does the same creates and removes the network with
// --force.
func measureCnetBulk(cfg *Config, fig *CnetFigures) {
	fig.Bulk, fig.Workers = cfg.Bulk, cfg.Workers
	c := &cnetCLI{bin: cfg.CnetBin, root: cfg.Root, network: "bbulk", subnet: netip.MustParsePrefix("10.78.0.0/16")}
	names := make([]string, cfg.Bulk)
	for i := range names {
		names[i] = fmt.Sprintf("bulk-%d", i+1)
	}
	// cleanup removes whatever a failed round left.
	cleanup := func() {
		_, err := c.cnet("network", "rm", "--force", c.network)
		note(err)
		for _, n := range names {
			_, err := c.cnet("rm", n)
			note(err)
		}
		note(waitNoVeths(time.Minute))
	}
	for round := 1; round <= 2; round++ {
		if err := c.prepare(); err != nil {
			fig.ParallelErr = err.Error()
			cleanup()
			return
		}
		rate, err := parallelCreate(c, names, cfg.Workers)
		if err != nil {
			fig.ParallelErr = err.Error()
			cleanup()
			return
		}
		fig.ParallelRate = append(fig.ParallelRate, rate)
		cfg.Log("  %d parallel creates, round %d: %.0f containers/s", cfg.Bulk, round, rate)
		if round == 1 {
			d, err := timed(func() error { _, err := c.cnet(append([]string{"rm"}, names...)...); return err })
			if err != nil {
				fig.RmAllErr = err.Error()
				cleanup()
				return
			}
			fig.RmAll = d
			if err := c.finish(); err != nil {
				fig.RmAllErr = err.Error()
			}
		} else {
			d, err := timed(func() error { _, err := c.cnet("network", "rm", "--force", c.network); return err })
			if err != nil {
				fig.NetRmErr = err.Error()
				cleanup()
				return
			}
			fig.NetRmForce = d
			// --force disconnects the containers; they remain, without endpoints.
			if _, err := c.cnet(append([]string{"rm"}, names...)...); err != nil {
				fig.NetRmErr = "removing the disconnected containers: " + err.Error()
			}
		}
		if err := waitNoVeths(time.Minute); err != nil {
			fig.ParallelErr = err.Error()
			return
		}
	}
}

// cnetMemory records peak RSS from the cnet-cli run: the create of the
// first container and of container maxN.
func cnetMemory(c *cnetCLI, prefix string, fig *CnetFigures, maxN int) {
	fig.RSSN = maxN
	fig.RSS1 = c.maxRSS[prefix+"-r1"]
	if fig.RSS1 == 0 {
		fig.RSS1 = c.maxRSS[prefix+"-1"]
	}
	fig.RSSMax = c.maxRSS[fmt.Sprintf("%s-%d", prefix, maxN)]
	if fig.RSSMax == 0 || fig.DBBytes == 0 {
		fig.MemErr = "not measured: the cnet-cli run did not reach the largest N"
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func stateDB(root string) string { return filepath.Join(root, "state.db") }
