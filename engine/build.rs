//! Compiles `csrc/ldouble.c`: Redis's `long double` INCRBYFLOAT arithmetic,
//! which needs the C library's strtold/printf on the platform's
//! `long double` (see the file's header comment).

fn main() {
    println!("cargo:rerun-if-changed=csrc/ldouble.c");
    cc::Build::new()
        .file("csrc/ldouble.c")
        .warnings(true)
        .compile("slotd_ldouble");
}
