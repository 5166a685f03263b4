package web

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

var nodeRe = regexp.MustCompile(`<g class="node s-([a-z]+) k-([a-z]+)" data-path="([^"]*)" transform="translate\((\d+) (\d+)\)">(?:<a href="([^"]*)">)?`)

type drawnNode struct {
	state, kind, path, href string
	x, y                    int
}

func drawnNodes(body string) map[string]drawnNode {
	out := map[string]drawnNode{}
	for _, m := range nodeRe.FindAllStringSubmatch(body, -1) {
		out[m[3]] = drawnNode{state: m[1], kind: m[2], path: m[3], href: strings.ReplaceAll(m[6], "&amp;", "&"), x: atoi(m[4]), y: atoi(m[5])}
	}
	return out
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestGraphPage walks the 20,409-target build's graph down from its
// packages to targets, as a person clicking the boxes would.
func TestGraphPage(t *testing.T) {
	h := newHandler(standardFixture())
	id := fixtureID(3)
	body := mustGet(t, h, "/builds/"+id+"/graph")
	top := drawnNodes(body)
	if len(top) != 2 || top["//analysis"].kind != "package" || top["//plots"].kind != "package" {
		t.Fatalf("the top of the graph shows %v, want the packages //analysis and //plots", top)
	}
	if top["//analysis"].state != "running" || !strings.Contains(body, "20,405 actions") {
		t.Errorf("//analysis is drawn %q without its count", top["//analysis"].state)
	}
	if !(top["//analysis"].x < top["//plots"].x) {
		t.Error("//plots, which reads //analysis, is not to its right")
	}
	if !strings.Contains(body, `data-from="//plots" data-to="//analysis"`) {
		t.Error("the edge //plots -> //analysis is not drawn")
	}

	// Open //analysis: groups sel_*, hist_*, card_* and the target all.
	body = mustGet(t, h, top["//analysis"].href)
	pkg := drawnNodes(body)
	if len(pkg) != 4 || pkg["//analysis:sel_*"].kind != "group" || pkg["//analysis:all"].kind != "target" {
		t.Fatalf("//analysis shows %v", pkg)
	}
	if !strings.Contains(pkg["//analysis:all"].href, "/builds/"+id+"/actions/") {
		t.Errorf("a target links to %q, not to its action", pkg["//analysis:all"].href)
	}
	sel, hist, card, all := pkg["//analysis:sel_*"], pkg["//analysis:hist_*"], pkg["//analysis:card_*"], pkg["//analysis:all"]
	if !(sel.x < hist.x && hist.x < card.x && card.x < all.x) {
		t.Errorf("layers are not in data-flow order: sel %d, hist %d, card %d, all %d", sel.x, hist.x, card.x, all.x)
	}
	if !strings.Contains(body, `href="/builds/`+id+`/graph"`) || !strings.Contains(body, "all packages") {
		t.Error("the breadcrumbs do not lead back to the top")
	}

	// Open sel_*: 100 groups, one per dataset, within MaxNodes.
	body = mustGet(t, h, sel.href)
	ds := drawnNodes(body)
	if len(ds) != 100 || len(ds) > api.MaxNodes {
		t.Fatalf("//analysis:sel_* shows %d boxes, want 100", len(ds))
	}
	if ds["//analysis:sel_d2_*"].state != "running" || ds["//analysis:sel_d0_*"].state != "done" || ds["//analysis:sel_d50_*"].state != "pending" {
		t.Error("the groups are not coloured by state")
	}
	u, _ := url.Parse(ds["//analysis:sel_d2_*"].href)
	if got := u.Query()["up"]; len(got) != 2 || got[0] != "//analysis" || got[1] != "//analysis:sel_*" {
		t.Errorf("the trail to pass on is %q", got)
	}
	// A wrapped layer: no two boxes overlap.
	seen := map[[2]int]string{}
	for p, n := range ds {
		if q, ok := seen[[2]int{n.x, n.y}]; ok {
			t.Fatalf("%s and %s are drawn at the same place", p, q)
		}
		seen[[2]int{n.x, n.y}] = p
	}

	// Down to targets, and the crumbs show the way back up.
	body = mustGet(t, h, ds["//analysis:sel_d2_*"].href)
	files := drawnNodes(body)
	if len(files) != 50 {
		t.Fatalf("sel_d2_* shows %d boxes, want 50 files", len(files))
	}
	body = mustGet(t, h, files["//analysis:sel_d2_f0_*"].href)
	leaves := drawnNodes(body)
	if len(leaves) != 4 || leaves["//analysis:sel_d2_f0_s0"].kind != "target" || leaves["//analysis:sel_d2_f0_s0"].state != "running" {
		t.Fatalf("sel_d2_f0_* shows %v", leaves)
	}
	for _, crumb := range []string{">//analysis<", ">//analysis:sel_*<", ">//analysis:sel_d2_*<"} {
		if !strings.Contains(body, crumb) {
			t.Errorf("the breadcrumbs lack %s", crumb)
		}
	}
}

func TestLayoutGraph(t *testing.T) {
	// A cycle between aggregated nodes must not hang the layout and is
	// drawn as a back edge; a chain goes left to right.
	g := &api.GraphView{
		Nodes: []api.GraphNode{{Path: "c", Label: "c"}, {Path: "b", Label: "b"}, {Path: "a", Label: "a"}, {Path: "x", Label: "x"}},
		Edges: []api.GraphEdge{{From: "c", To: "b", Count: 3}, {From: "b", To: "a", Count: 1}, {From: "a", To: "c", Count: 1},
			{From: "x", To: "c", Count: 1}, {From: "x", To: "gone", Count: 1}},
	}
	l := layoutGraph(g, func(*api.GraphNode) string { return "" })
	if len(l.Nodes) != 4 || len(l.Edges) != 4 {
		t.Fatalf("%d nodes, %d edges; want 4 and 4 (an edge to a node not shown is dropped)", len(l.Nodes), len(l.Edges))
	}
	backs := 0
	for _, e := range l.Edges {
		if e.Back {
			backs++
		}
	}
	if backs != 1 {
		t.Errorf("%d back edges, want 1 for the one cycle", backs)
	}
	if !(l.Nodes[3].X > l.Nodes[0].X) {
		t.Error("x, which reads c, is not right of it")
	}
	for _, n := range l.Nodes {
		if n.X+n.W > l.Width || n.Y+n.H > l.Height {
			t.Errorf("%s lies outside the drawing", n.Path)
		}
	}
	if l := layoutGraph(&api.GraphView{}, nil); l.Width != 0 || len(l.Nodes) != 0 {
		t.Error("an empty graph is not empty")
	}
}
