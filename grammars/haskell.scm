; Haskell definitions. A function is its type signature and every equation of its name
; (the registry joins adjacent clauses); top-level symbols are qualified by the module
; (`XMonad.Core.runX`), class and instance members by the class (`XMonad.Core.LayoutClass.runLayout`).
; A Haddock comment right before a declaration is its doc.

(header module: (module) @package)

(declarations (signature name: (variable) @name) @definition.function)
(declarations (function name: (variable) @name) @definition.function)
(declarations (bind name: (variable) @name) @definition.function)
(declarations (data_type name: (name) @name) @definition.type)
(declarations (newtype name: (name) @name) @definition.type)
(declarations (type_synonym name: (name) @name) @definition.type)
(declarations (type_family name: (name) @name) @definition.type)
(declarations (class name: (name) @name) @definition.class)
(declarations (instance name: (name) @name) @definition.impl)

(class_declarations (signature name: (variable) @name) @definition.function)
(class_declarations (function name: (variable) @name) @definition.function)
(class_declarations (bind name: (variable) @name) @definition.function)
(instance_declarations (function name: (variable) @name) @definition.function)
(instance_declarations (bind name: (variable) @name) @definition.function)

(_ (haddock) @doc
  .
  [(signature name: (variable) @name)
   (function name: (variable) @name)
   (bind name: (variable) @name)
   (data_type name: (name) @name)
   (newtype name: (name) @name)
   (type_synonym name: (name) @name)
   (class name: (name) @name)])

; The grammar keeps a Haddock comment before the first declaration inside the node before
; it (the imports, the class head); such a comment is the first declaration's doc too.
((imports (haddock) @doc .)
 .
 (declarations .
   [(signature name: (variable) @name)
    (function name: (variable) @name)
    (bind name: (variable) @name)
    (data_type name: (name) @name)
    (newtype name: (name) @name)
    (type_synonym name: (name) @name)
    (class name: (name) @name)]))
(class (haddock) @doc . (class_declarations . (signature name: (variable) @name)))
