package loginpenalty

// Sources is the number of sources p keeps (for the external tests).
func Sources(p *Penalty) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
