; Zig definitions: a `const Name = struct { … }` (also enum, union) is a container, so its
; functions become `Name.func`; `test "…"` blocks are tests.

(function_declaration name: (identifier) @name) @definition.function
(variable_declaration (identifier) @name (struct_declaration) @body) @definition.struct
(variable_declaration (identifier) @name (enum_declaration) @body) @definition.enum
(variable_declaration (identifier) @name (union_declaration) @body) @definition.union
(test_declaration (string) @name) @definition.test
