//go:build race

package sim

const raceEnabled = true

// raceSeeds keeps the default sweep short under the race detector.
const raceSeeds = 20
