//! `PassRegistry`: the passes a recipe can run, by name: the built-ins (run
//! in their fixed order on every program) and passes registered by a user
//! program (run when a recipe's `pass "NAME" { ... }` asks for them).

use crate::diag::{did_you_mean, Diag};

use super::Pass;

pub struct PassRegistry {
    builtins: Vec<Box<dyn Pass>>,
    custom: Vec<Box<dyn Pass>>,
}

impl PassRegistry {
    /// A registry with no built-in passes (for testing passes in isolation).
    pub fn empty() -> Self {
        PassRegistry {
            builtins: Vec::new(),
            custom: Vec::new(),
        }
    }

    /// The built-in passes, in their run order.
    /// A registry whose built-in passes are `builtins`, run in that order
    /// (`plcc::pass_registry` gives plcc's own).
    pub fn new(builtins: Vec<Box<dyn Pass>>) -> Self {
        PassRegistry {
            builtins,
            custom: Vec::new(),
        }
    }

    /// Adds a custom pass. A name that is already taken is an error.
    pub fn register(&mut self, pass: Box<dyn Pass>) -> Result<(), Diag> {
        if self.get(pass.name()).is_some() {
            return Err(Diag::new(
                "plcc::pass::duplicate",
                format!("a pass named `{}` is already registered", pass.name()),
            ));
        }
        self.custom.push(pass);
        Ok(())
    }

    /// The built-in passes, in run order.
    pub fn builtins(&self) -> impl Iterator<Item = &dyn Pass> {
        self.builtins.iter().map(|p| p.as_ref())
    }

    /// The registered custom passes, in registration order.
    pub fn custom(&self) -> impl Iterator<Item = &dyn Pass> {
        self.custom.iter().map(|p| p.as_ref())
    }

    /// Every pass name: built-ins first.
    pub fn names(&self) -> Vec<&'static str> {
        self.builtins()
            .chain(self.custom())
            .map(|p| p.name())
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&dyn Pass> {
        self.builtins()
            .chain(self.custom())
            .find(|p| p.name() == name)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtins().any(|p| p.name() == name)
    }

    /// The custom pass `name`, or a diagnostic listing the known ones.
    pub fn lookup_custom(&self, name: &str) -> Result<&dyn Pass, Diag> {
        if let Some(p) = self.custom().find(|p| p.name() == name) {
            return Ok(p);
        }
        if self.is_builtin(name) {
            return Err(Diag::new(
                "plcc::pass::builtin-called",
                format!("`{name}` is a built-in pass; it always runs and takes its settings from the recipe"),
            ));
        }
        let custom: Vec<&str> = self.custom().map(|p| p.name()).collect();
        let mut d = Diag::new("plcc::pass::unknown", format!("unknown pass `{name}`"));
        d = match did_you_mean(name, custom.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d,
        };
        let known = if custom.is_empty() {
            "no custom passes are registered in this program (a program registers them with `PassRegistry::register` and `plcc::cli::main_with`)".to_string()
        } else {
            format!("registered custom passes: {}", custom.join(", "))
        };
        let builtins: Vec<&str> = self.builtins().map(|p| p.name()).collect();
        Err(d.note(known).note(format!(
            "built-in passes (always run): {}",
            builtins.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Program;
    use crate::pass::PassCx;

    struct Noop;

    impl Pass for Noop {
        fn name(&self) -> &'static str {
            "head-floor"
        }

        fn run(&self, _: &mut Program, _: &mut PassCx) -> Result<(), Diag> {
            Ok(())
        }
    }

    #[test]
    fn lookup_suggests_registered_names_and_rejects_builtins() {
        let mut registry = crate::pass_registry();
        registry.register(Box::new(Noop)).unwrap();
        assert_eq!(registry.names().len(), 7);
        assert!(registry.lookup_custom("head-floor").is_ok());
        let d = registry.lookup_custom("head-flor").err().unwrap();
        assert_eq!(d.code, "plcc::pass::unknown");
        assert_eq!(d.help.as_deref(), Some("did you mean `head-floor`?"));
        assert!(d.notes[0].contains("head-floor"));
        let d = registry.lookup_custom("width-prune").err().unwrap();
        assert_eq!(d.code, "plcc::pass::builtin-called");
        assert!(registry.register(Box::new(Noop)).is_err());
    }
}
