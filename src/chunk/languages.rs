//! The language registry: the one place a language is described. An entry says how files
//! of the language are recognised (extensions, file names, shebang interpreters, content
//! markers for shared extensions), how they are chunked (a tree-sitter grammar with its
//! chunk query in `grammars/<name>.scm`, or line windows), how a qualified symbol is
//! joined, how the TUI colours it (the grammar crate's own highlights query) and which file
//! names are its tests and generated code. Adding a language is an entry here, a query file
//! and a fixture under `tests/fixtures/languages/`; nothing else matches on language names.

/// How a language with a grammar is chunked and coloured.
pub struct Syntax {
    /// The grammar, from its crate.
    pub grammar: fn() -> tree_sitter::Language,
    /// The chunk query (`grammars/<name>.scm`): `@definition.<kind>` and `@name` per
    /// definition; optional `@body` (where the grammar has no `body` field), `@receiver`
    /// (a Go method's type), `@doc` (a docstring inside the definition) and, in a pattern
    /// of its own, `@package` (the name every top-level symbol of the file is qualified by).
    pub chunks: &'static str,
    /// The grammar crate's highlights query, in parts that are concatenated (TypeScript
    /// builds on JavaScript's, C++ on C's); empty where the crate ships none.
    pub highlights: &'static [&'static str],
    /// Joins the parts of a qualified symbol (`::`, `.`).
    pub separator: &'static str,
    /// Qualify top-level symbols with the module path derived from the file path (Python).
    pub module_from_path: bool,
    /// Sibling nodes right before a definition that belong to its chunk: doc comments,
    /// attributes, annotations. Comments among them give the chunk its doc line.
    pub leading_kinds: &'static [&'static str],
}

/// File names that mark tests or generated code in a language.
pub struct FileConventions {
    /// File-name prefixes of tests (`test_`).
    pub test_prefixes: &'static [&'static str],
    /// File-name suffixes of tests (`_test.go`, `.spec.ts`, `Test.java`).
    pub test_suffixes: &'static [&'static str],
    /// File-name suffixes of generated code (`_pb2.py`, `.pb.go`).
    pub generated_suffixes: &'static [&'static str],
}

const NO_CONVENTIONS: FileConventions = FileConventions {
    test_prefixes: &[],
    test_suffixes: &[],
    generated_suffixes: &[],
};

/// One language.
pub struct LanguageSpec {
    /// The name stored with each chunk and accepted by `--lang`.
    pub name: &'static str,
    /// File extensions, lower case, without the dot.
    pub extensions: &'static [&'static str],
    /// Whole file names (`Rakefile`), for files without a telling extension.
    pub file_names: &'static [&'static str],
    /// Interpreters named on a `#!` first line (`bash`, `python3`), for files without one.
    pub shebangs: &'static [&'static str],
    /// Extensions this language shares with another one (C++ and C `.h`): it claims such a
    /// file when its text holds one of `claim_markers`.
    pub claims: &'static [&'static str],
    /// Text that tells a shared-extension file is this language's.
    pub claim_markers: &'static [&'static str],
    /// The grammar, when the language has one; otherwise the file is cut into line windows.
    pub syntax: Option<Syntax>,
    /// Windows end before headings and carry the heading in their symbol (Markdown).
    pub heading_windows: bool,
    /// Test and generated file names.
    pub files: FileConventions,
    /// A definition written as adjacent clauses of one name (a Haskell type signature and
    /// its equations, an Elixir function's clauses) is one definition spanning them all.
    pub joins_clauses: bool,
}

const fn plain(name: &'static str, extensions: &'static [&'static str]) -> LanguageSpec {
    LanguageSpec {
        name,
        extensions,
        file_names: &[],
        shebangs: &[],
        claims: &[],
        claim_markers: &[],
        syntax: None,
        heading_windows: false,
        files: NO_CONVENTIONS,
        joins_clauses: false,
    }
}

/// A grammar language with the defaults most entries share.
const fn coded(
    name: &'static str,
    extensions: &'static [&'static str],
    syntax: Syntax,
    files: FileConventions,
) -> LanguageSpec {
    LanguageSpec {
        name,
        extensions,
        file_names: &[],
        shebangs: &[],
        claims: &[],
        claim_markers: &[],
        syntax: Some(syntax),
        heading_windows: false,
        files,
        joins_clauses: false,
    }
}

const fn tests(
    test_prefixes: &'static [&'static str],
    test_suffixes: &'static [&'static str],
    generated_suffixes: &'static [&'static str],
) -> FileConventions {
    FileConventions {
        test_prefixes,
        test_suffixes,
        generated_suffixes,
    }
}

const C_COMMENTS: &[&str] = &["comment"];
const JS_TEST_SUFFIXES: &[&str] = &[
    ".test.js",
    ".spec.js",
    ".test.jsx",
    ".spec.jsx",
    ".test.mjs",
    ".test.ts",
    ".spec.ts",
    ".test.tsx",
    ".spec.tsx",
];

/// Every language codeq recognises, grammar languages first.
pub const LANGUAGES: &[LanguageSpec] = &[
    coded(
        "rust",
        &["rs"],
        Syntax {
            grammar: || tree_sitter_rust::LANGUAGE.into(),
            chunks: include_str!("../../grammars/rust.scm"),
            highlights: &[tree_sitter_rust::HIGHLIGHTS_QUERY],
            separator: "::",
            module_from_path: false,
            leading_kinds: &["line_comment", "block_comment", "attribute_item"],
        },
        tests(&[], &["_test.rs", "_tests.rs"], &[".pb.rs"]),
    ),
    LanguageSpec {
        shebangs: &["python", "python3"],
        ..coded(
            "python",
            &["py", "pyi"],
            Syntax {
                grammar: || tree_sitter_python::LANGUAGE.into(),
                chunks: include_str!("../../grammars/python.scm"),
                highlights: &[tree_sitter_python::HIGHLIGHTS_QUERY],
                separator: ".",
                module_from_path: true,
                leading_kinds: &["comment"],
            },
            tests(
                &["test_", "conftest."],
                &["_test.py", "_tests.py"],
                &["_pb2.py", "_pb2_grpc.py"],
            ),
        )
    },
    coded(
        "go",
        &["go"],
        Syntax {
            grammar: || tree_sitter_go::LANGUAGE.into(),
            chunks: include_str!("../../grammars/go.scm"),
            highlights: &[tree_sitter_go::HIGHLIGHTS_QUERY],
            separator: ".",
            module_from_path: false,
            leading_kinds: C_COMMENTS,
        },
        tests(&[], &["_test.go"], &[".pb.go", "_generated.go"]),
    ),
    coded(
        "typescript",
        &["ts", "mts", "cts"],
        Syntax {
            grammar: || tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            chunks: include_str!("../../grammars/typescript.scm"),
            highlights: &[
                tree_sitter_javascript::HIGHLIGHT_QUERY,
                tree_sitter_typescript::HIGHLIGHTS_QUERY,
            ],
            separator: ".",
            module_from_path: false,
            leading_kinds: C_COMMENTS,
        },
        tests(&[], JS_TEST_SUFFIXES, &[]),
    ),
    coded(
        "tsx",
        &["tsx"],
        Syntax {
            grammar: || tree_sitter_typescript::LANGUAGE_TSX.into(),
            chunks: include_str!("../../grammars/typescript.scm"),
            highlights: &[
                tree_sitter_javascript::HIGHLIGHT_QUERY,
                tree_sitter_javascript::JSX_HIGHLIGHT_QUERY,
                tree_sitter_typescript::HIGHLIGHTS_QUERY,
            ],
            separator: ".",
            module_from_path: false,
            leading_kinds: C_COMMENTS,
        },
        tests(&[], JS_TEST_SUFFIXES, &[]),
    ),
    LanguageSpec {
        shebangs: &["node"],
        ..coded(
            "javascript",
            &["js", "mjs", "cjs", "jsx"],
            Syntax {
                grammar: || tree_sitter_javascript::LANGUAGE.into(),
                chunks: include_str!("../../grammars/javascript.scm"),
                highlights: &[
                    tree_sitter_javascript::HIGHLIGHT_QUERY,
                    tree_sitter_javascript::JSX_HIGHLIGHT_QUERY,
                ],
                separator: ".",
                module_from_path: false,
                leading_kinds: C_COMMENTS,
            },
            tests(&[], JS_TEST_SUFFIXES, &[".min.js"]),
        )
    },
    coded(
        "java",
        &["java"],
        Syntax {
            grammar: || tree_sitter_java::LANGUAGE.into(),
            chunks: include_str!("../../grammars/java.scm"),
            highlights: &[tree_sitter_java::HIGHLIGHTS_QUERY],
            separator: ".",
            module_from_path: false,
            leading_kinds: &["line_comment", "block_comment"],
        },
        tests(&[], &["Test.java", "Tests.java", "IT.java"], &[]),
    ),
    coded(
        "c",
        &["c", "h"],
        Syntax {
            grammar: || tree_sitter_c::LANGUAGE.into(),
            chunks: include_str!("../../grammars/c.scm"),
            highlights: &[tree_sitter_c::HIGHLIGHT_QUERY],
            separator: "::",
            module_from_path: false,
            leading_kinds: C_COMMENTS,
        },
        tests(&["test_"], &["_test.c", "_tests.c"], &[]),
    ),
    LanguageSpec {
        claims: &["h"],
        claim_markers: &["namespace ", "template <", "template<", "public:", "std::"],
        ..coded(
            "cpp",
            &["cc", "cpp", "cxx", "c++", "hpp", "hh", "hxx", "ipp", "inl"],
            Syntax {
                grammar: || tree_sitter_cpp::LANGUAGE.into(),
                chunks: include_str!("../../grammars/cpp.scm"),
                highlights: &[
                    tree_sitter_c::HIGHLIGHT_QUERY,
                    tree_sitter_cpp::HIGHLIGHT_QUERY,
                ],
                separator: "::",
                module_from_path: false,
                leading_kinds: C_COMMENTS,
            },
            tests(
                &[],
                &["_test.cc", "_test.cpp", "_unittest.cc", "_tests.cpp"],
                &[".pb.cc", ".pb.h"],
            ),
        )
    },
    coded(
        "csharp",
        &["cs"],
        Syntax {
            grammar: || tree_sitter_c_sharp::LANGUAGE.into(),
            chunks: include_str!("../../grammars/csharp.scm"),
            highlights: &[tree_sitter_c_sharp::HIGHLIGHTS_QUERY],
            separator: ".",
            module_from_path: false,
            leading_kinds: &["comment", "attribute_list"],
        },
        tests(&[], &["Tests.cs", "Test.cs"], &[".g.cs", ".Designer.cs"]),
    ),
    LanguageSpec {
        file_names: &["Rakefile", "Gemfile"],
        shebangs: &["ruby"],
        ..coded(
            "ruby",
            &["rb", "rake", "gemspec"],
            Syntax {
                grammar: || tree_sitter_ruby::LANGUAGE.into(),
                chunks: include_str!("../../grammars/ruby.scm"),
                highlights: &[tree_sitter_ruby::HIGHLIGHTS_QUERY],
                separator: "::",
                module_from_path: false,
                leading_kinds: &["comment"],
            },
            tests(&["test_"], &["_spec.rb", "_test.rb"], &[]),
        )
    },
    LanguageSpec {
        shebangs: &["php"],
        ..coded(
            "php",
            &["php"],
            Syntax {
                grammar: || tree_sitter_php::LANGUAGE_PHP.into(),
                chunks: include_str!("../../grammars/php.scm"),
                highlights: &[tree_sitter_php::HIGHLIGHTS_QUERY],
                separator: "::",
                module_from_path: false,
                leading_kinds: &["comment", "attribute_list"],
            },
            tests(&[], &["Test.php"], &[]),
        )
    },
    coded(
        "kotlin",
        &["kt", "kts"],
        Syntax {
            grammar: || tree_sitter_kotlin_ng::LANGUAGE.into(),
            chunks: include_str!("../../grammars/kotlin.scm"),
            highlights: &[include_str!("../../grammars/kotlin-highlights.scm")],
            separator: ".",
            module_from_path: false,
            leading_kinds: &["line_comment", "block_comment"],
        },
        tests(&[], &["Test.kt", "Tests.kt"], &[]),
    ),
    coded(
        "swift",
        &["swift"],
        Syntax {
            grammar: || tree_sitter_swift::LANGUAGE.into(),
            chunks: include_str!("../../grammars/swift.scm"),
            highlights: &[tree_sitter_swift::HIGHLIGHTS_QUERY],
            separator: ".",
            module_from_path: false,
            leading_kinds: &["comment", "multiline_comment"],
        },
        tests(&[], &["Tests.swift", "Test.swift"], &[]),
    ),
    coded(
        "scala",
        &["scala", "sc"],
        Syntax {
            grammar: || tree_sitter_scala::LANGUAGE.into(),
            chunks: include_str!("../../grammars/scala.scm"),
            highlights: &[tree_sitter_scala::HIGHLIGHTS_QUERY],
            separator: ".",
            module_from_path: false,
            leading_kinds: &["comment", "block_comment"],
        },
        tests(&[], &["Spec.scala", "Test.scala", "Suite.scala"], &[]),
    ),
    LanguageSpec {
        shebangs: &["bash", "sh", "zsh"],
        ..coded(
            "bash",
            &["sh", "bash", "zsh", "bats"],
            Syntax {
                grammar: || tree_sitter_bash::LANGUAGE.into(),
                chunks: include_str!("../../grammars/bash.scm"),
                highlights: &[tree_sitter_bash::HIGHLIGHT_QUERY],
                separator: ".",
                module_from_path: false,
                leading_kinds: &["comment"],
            },
            tests(&[], &[".bats"], &[]),
        )
    },
    LanguageSpec {
        shebangs: &["lua", "luajit"],
        ..coded(
            "lua",
            &["lua"],
            Syntax {
                grammar: || tree_sitter_lua::LANGUAGE.into(),
                chunks: include_str!("../../grammars/lua.scm"),
                highlights: &[tree_sitter_lua::HIGHLIGHTS_QUERY],
                separator: ".",
                module_from_path: false,
                leading_kinds: &["comment"],
            },
            tests(&[], &["_spec.lua", "_test.lua"], &[]),
        )
    },
    coded(
        "zig",
        &["zig"],
        Syntax {
            grammar: || tree_sitter_zig::LANGUAGE.into(),
            chunks: include_str!("../../grammars/zig.scm"),
            highlights: &[tree_sitter_zig::HIGHLIGHTS_QUERY],
            separator: ".",
            module_from_path: false,
            leading_kinds: &["comment"],
        },
        NO_CONVENTIONS,
    ),
    LanguageSpec {
        joins_clauses: true,
        ..coded(
            "haskell",
            &["hs"],
            Syntax {
                grammar: || tree_sitter_haskell::LANGUAGE.into(),
                chunks: include_str!("../../grammars/haskell.scm"),
                highlights: &[tree_sitter_haskell::HIGHLIGHTS_QUERY],
                separator: ".",
                module_from_path: false,
                leading_kinds: &["haddock", "comment", "pragma"],
            },
            tests(&[], &["Spec.hs", "Test.hs", "Tests.hs"], &[]),
        )
    },
    LanguageSpec {
        shebangs: &["elixir"],
        joins_clauses: true,
        ..coded(
            "elixir",
            &["ex", "exs"],
            Syntax {
                grammar: || tree_sitter_elixir::LANGUAGE.into(),
                chunks: include_str!("../../grammars/elixir.scm"),
                highlights: &[tree_sitter_elixir::HIGHLIGHTS_QUERY],
                separator: ".",
                module_from_path: false,
                leading_kinds: &["comment", "unary_operator"],
            },
            tests(&[], &["_test.exs"], &[]),
        )
    },
    LanguageSpec {
        heading_windows: true,
        ..plain("markdown", &["md", "markdown", "rst", "txt"])
    },
    plain("toml", &["toml"]),
    plain("yaml", &["yaml", "yml"]),
    plain("json", &["json", "jsonl"]),
    plain("sql", &["sql"]),
    plain("html", &["html", "htm"]),
    plain("css", &["css", "scss"]),
];

/// The entry named `name`.
pub fn by_name(name: &str) -> Option<&'static LanguageSpec> {
    LANGUAGES.iter().find(|spec| spec.name == name)
}

/// The language of a file: by a content marker for a shared extension, by extension, by
/// whole file name, then by the interpreter on a `#!` line; `None` when nothing says.
pub fn detect(path: &str, text: &str) -> Option<&'static LanguageSpec> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let by_content = || {
        LANGUAGES.iter().find(|spec| {
            spec.claims.contains(&ext.as_str())
                && spec.claim_markers.iter().any(|m| text.contains(m))
        })
    };
    let by_extension = || {
        LANGUAGES
            .iter()
            .find(|spec| spec.extensions.contains(&ext.as_str()))
    };
    let by_file_name = || {
        LANGUAGES
            .iter()
            .find(|spec| spec.file_names.contains(&name))
    };
    by_content()
        .or_else(by_extension)
        .or_else(by_file_name)
        .or_else(|| by_shebang(text))
}

fn by_shebang(text: &str) -> Option<&'static LanguageSpec> {
    let first = text.lines().next()?.strip_prefix("#!")?;
    let mut words = first.split_whitespace();
    let mut program = words.next()?.rsplit('/').next()?;
    if program == "env" {
        program = words.find(|w| !w.starts_with('-'))?;
    }
    let program = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    LANGUAGES.iter().find(|spec| {
        spec.shebangs
            .iter()
            .any(|s| s.trim_end_matches(|c: char| c.is_ascii_digit()) == program)
    })
}

/// Every language chunked with a grammar, as (name, its first file extension).
pub fn grammar_languages() -> Vec<(&'static str, &'static str)> {
    LANGUAGES
        .iter()
        .filter(|spec| spec.syntax.is_some())
        .map(|spec| (spec.name, spec.extensions[0]))
        .collect()
}
