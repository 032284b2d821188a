"""Pure policy: admission, claims, firmware targets, the domain enums and errors. Imports nothing of the runtime."""
