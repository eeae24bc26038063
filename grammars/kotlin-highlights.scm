; Highlights for Kotlin (tree-sitter-kotlin-ng ships none): comments, strings, numbers,
; type names and the names of declared functions; keywords are classed by the TUI's
; fallback for anonymous leaves.

[(line_comment) (block_comment)] @comment
(string_literal) @string
(character_literal) @string
[(number_literal) (float_literal)] @number
(user_type (identifier) @type)
(class_declaration name: (identifier) @type)
(object_declaration name: (identifier) @type)
(function_declaration name: (identifier) @function)
