; Definitions codeq turns into chunks. Each pattern captures the whole definition as
; @definition.<kind> and its name as @name. A decorated definition is captured with its
; decorators; the chunker keeps the outermost capture of each name.

(function_definition name: (identifier) @name) @definition.function
(class_definition name: (identifier) @name) @definition.class
(decorated_definition
  definition: (function_definition name: (identifier) @name)) @definition.function
(decorated_definition
  definition: (class_definition name: (identifier) @name)) @definition.class

; Docstrings: the first statement of a body, when it is a string.
(function_definition name: (identifier) @name
  body: (block . (expression_statement (string) @doc)))
(class_definition name: (identifier) @name
  body: (block . (expression_statement (string) @doc)))
