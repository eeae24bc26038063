; Elixir definitions: modules, protocols and implementations qualify the functions and
; macros inside them (`Plug.Conn.Query.decode`). A function's clauses are one definition
; (the registry joins adjacent clauses of one name). `@doc` and `@moduledoc` strings are docs.

(call
  target: (identifier) @_keyword
  (arguments . (alias) @name)
  (#any-of? @_keyword "defmodule" "defprotocol" "defimpl")) @definition.module

(call
  target: (identifier) @_keyword
  (arguments .
    [(identifier) @name
     (call target: (identifier) @name)
     (binary_operator left: (call target: (identifier) @name) operator: "when")
     (binary_operator left: (identifier) @name operator: "when")])
  (#any-of? @_keyword "def" "defp" "defmacro" "defmacrop" "defguard" "defguardp"
    "defdelegate" "defn" "defnp")) @definition.function

(call
  target: (identifier) @_keyword
  (arguments . (alias) @name)
  (do_block .
    (unary_operator
      operand: (call target: (identifier) @_attribute
        (arguments [(string (quoted_content) @doc) (sigil (quoted_content) @doc)]))))
  (#any-of? @_keyword "defmodule" "defprotocol")
  (#eq? @_attribute "moduledoc"))

; A `@doc` string (a `@spec` may stand between) documents the call after it; whether that
; call is a definition is the pattern above's to say.
((unary_operator
   operand: (call target: (identifier) @_attribute
     (arguments [(string (quoted_content) @doc) (sigil (quoted_content) @doc)])))
 .
 (unary_operator)?
 .
 (call
   target: (identifier)
   (arguments .
     [(identifier) @name
      (call target: (identifier) @name)
      (binary_operator left: (call target: (identifier) @name) operator: "when")]))
 (#eq? @_attribute "doc"))
