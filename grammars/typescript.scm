; TypeScript and TSX definitions: JavaScript's, plus interfaces, type aliases, enums,
; abstract classes and namespaces. An exported definition is captured with its `export`.

(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(function_signature name: (identifier) @name) @definition.function
(class_declaration name: (type_identifier) @name) @definition.class
(abstract_class_declaration name: (type_identifier) @name) @definition.class
(method_definition name: (_) @name) @definition.function
(abstract_method_signature name: (_) @name) @definition.function
(interface_declaration name: (type_identifier) @name) @definition.interface
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(internal_module name: (_) @name) @definition.namespace
(lexical_declaration
  (variable_declarator name: (identifier) @name
    value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @definition.function
(export_statement
  declaration: [
    (function_declaration name: (identifier) @name)
    (generator_function_declaration name: (identifier) @name)
    (function_signature name: (identifier) @name)
  ]) @definition.function
(export_statement
  declaration: [
    (class_declaration name: (type_identifier) @name)
    (abstract_class_declaration name: (type_identifier) @name)
  ]) @definition.class
(export_statement
  declaration: (interface_declaration name: (type_identifier) @name)) @definition.interface
(export_statement
  declaration: (type_alias_declaration name: (type_identifier) @name)) @definition.type
(export_statement
  declaration: (enum_declaration name: (identifier) @name)) @definition.enum
(export_statement
  declaration: (lexical_declaration
    (variable_declarator name: (identifier) @name
      value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)]))) @definition.function
