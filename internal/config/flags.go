package config

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

// binding ties the flags of one FlagSet to the Config passed to BindFlags.
type binding struct {
	// c receives the flag values as they are parsed.
	c *Config
	// base is *c as it was at BindFlags: the defaults beneath the file.
	base Config
}

// flagValue is the pflag.Value of one setting.
type flagValue struct {
	opt *option
	b   *binding
}

func (v *flagValue) String() string     { return v.opt.get(v.b.c) }
func (v *flagValue) Set(s string) error { return v.opt.set(v.b.c, s) }
func (v *flagValue) Type() string       { return v.opt.kind.String() }

// BindFlags registers the flags of every setting (--name, --data-dir,
// --listen, ... and --config) on fs, writing parsed values into c. The
// values in c when BindFlags is called are the defaults (shown in --help);
// pass Default(). After parsing, call Load to apply the file and the
// environment beneath the flags.
func BindFlags(fs *pflag.FlagSet, c *Config) {
	b := &binding{c: c, base: c.clone()}
	for i := range options {
		opt := &options[i]
		fs.Var(&flagValue{opt: opt, b: b}, opt.name, fmt.Sprintf("%s ($%s)", opt.usage, envName(opt.name)))
		if opt.kind == kindBool {
			fs.Lookup(opt.name).NoOptDefVal = "true"
		}
	}
}

// Load resolves the settings of a FlagSet prepared by BindFlags and parsed:
// defaults, then the config file (--config, else $CAIRN_CONFIG), then the
// CAIRN_* environment variables, then the flags given on the command line.
// It then applies EnsureDefaults and Validate. The result is also stored in
// the Config bound by BindFlags. lookupEnv is normally os.LookupEnv (nil
// means that); a variable that is set but empty counts as set, which
// disables --listen-resp for instance.
func Load(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	f := fs.Lookup(options[0].name)
	if f == nil {
		return Config{}, fmt.Errorf("config: flags were not bound with BindFlags")
	}
	fv, ok := f.Value.(*flagValue)
	if !ok {
		return Config{}, fmt.Errorf("config: flag --%s was not bound with BindFlags", f.Name)
	}
	b := fv.b

	cfg := b.base.clone()
	path := cfg.ConfigFile
	if v, ok := lookupEnv(envName(configOption)); ok {
		path = v
	}
	if fs.Changed(configOption) {
		path = b.c.ConfigFile
	}
	if path != "" {
		if err := LoadFile(path, &cfg); err != nil {
			return Config{}, err
		}
		cfg.ConfigFile = path
	}
	for i := range options {
		opt := &options[i]
		if opt.name == configOption {
			continue
		}
		if v, ok := lookupEnv(envName(opt.name)); ok {
			if err := opt.set(&cfg, v); err != nil {
				return Config{}, fmt.Errorf("config: $%s: %w", envName(opt.name), err)
			}
		}
	}
	for i := range options {
		opt := &options[i]
		if opt.name == configOption || !fs.Changed(opt.name) {
			continue
		}
		if err := opt.set(&cfg, opt.get(b.c)); err != nil {
			return Config{}, fmt.Errorf("config: --%s: %w", opt.name, err)
		}
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	*b.c = cfg.clone()
	return cfg, nil
}
