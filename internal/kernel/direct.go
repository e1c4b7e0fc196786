package kernel

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/cnetdev/cnet/internal/link"
	"github.com/cnetdev/cnet/internal/model"
	"github.com/cnetdev/cnet/internal/netns"
)

func (k *Kernel) directEnd(s model.LinkEndSpec) (link.DirectEnd, error) {
	n, err := k.Netns(s.Netns)
	if err != nil {
		return link.DirectEnd{}, err
	}
	return link.DirectEnd{H: n.Link, Fd: n.Fd(), Name: s.Netns, Spec: s}, nil
}

func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT)
}

// EnsureLink creates a direct link between two containers.
func (k *Kernel) EnsureLink(s model.LinkSpec) error {
	a, err := k.directEnd(s.A)
	if err != nil {
		return err
	}
	b, err := k.directEnd(s.B)
	if err != nil {
		return err
	}
	return link.EnsureDirect(a, b, s.MTU, s.Mark)
}

// RemoveLink deletes a direct link through whichever end's namespace is
// still there.
func (k *Kernel) RemoveLink(s model.LinkSpec) error {
	var ends []link.DirectEnd
	for _, e := range []model.LinkEndSpec{s.A, s.B} {
		d, err := k.directEnd(e)
		if gone(err) {
			continue
		}
		if err != nil {
			return err
		}
		ends = append(ends, d)
	}
	return link.RemoveDirect(ends, s.Mark)
}

// CheckLink describes what is wrong with a direct link, or returns "".
func (k *Kernel) CheckLink(s model.LinkSpec) (string, error) {
	for _, e := range []model.LinkEndSpec{s.A, s.B} {
		n, err := k.Netns(e.Netns)
		if gone(err) {
			return "namespace " + e.Netns + " is missing", nil
		}
		if err != nil {
			return "", err
		}
		l, mark, err := link.Lookup(n.Link, e.Interface)
		if err != nil {
			return "", err
		}
		if l == nil {
			return fmt.Sprintf("%s is missing in %s", e.Interface, e.Netns), nil
		}
		if mark != s.Mark {
			return fmt.Sprintf("%s in %s carries %q, not cnet's mark", e.Interface, e.Netns, mark), nil
		}
	}
	return "", nil
}

// setNetnsForwarding turns IPv4 forwarding on inside a namespace.
func (k *Kernel) setNetnsForwarding(name string) error {
	n, err := k.Netns(name)
	if err != nil {
		return err
	}
	return netns.Do(n.Path, link.SetNetnsForwarding)
}
