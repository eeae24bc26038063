; C# definitions: namespaces (block or file-scoped) and types qualify their members
; (`Namespace.Class.Method`).

(file_scoped_namespace_declaration name: (_) @package)
(namespace_declaration name: (_) @name) @definition.namespace
(class_declaration name: (identifier) @name) @definition.class
(record_declaration name: (identifier) @name) @definition.class
(struct_declaration name: (identifier) @name) @definition.struct
(interface_declaration name: (identifier) @name) @definition.interface
(enum_declaration name: (identifier) @name) @definition.enum
(method_declaration name: (identifier) @name) @definition.function
(constructor_declaration name: (identifier) @name) @definition.function
(destructor_declaration name: (identifier) @name) @definition.function
(local_function_statement name: (identifier) @name) @definition.function
(property_declaration name: (identifier) @name accessors: (accessor_list) @body) @definition.property
(delegate_declaration name: (identifier) @name) @definition.type
