; PHP definitions: classes, interfaces, traits and enums qualify their methods
; (`Class::method`); a braced namespace qualifies what it holds.

(namespace_definition name: (namespace_name) @name body: (compound_statement)) @definition.namespace
(class_declaration name: (name) @name) @definition.class
(interface_declaration name: (name) @name) @definition.interface
(trait_declaration name: (name) @name) @definition.trait
(enum_declaration name: (name) @name) @definition.enum
(function_definition name: (name) @name) @definition.function
(method_declaration name: (name) @name) @definition.function
