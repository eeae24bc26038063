; Go definitions. Methods are qualified by their receiver's type (`Server.Start`) and every
; top-level symbol by the file's package (`http.Server.Start`).

(package_clause (package_identifier) @package)

(function_declaration name: (identifier) @name) @definition.function
(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [(type_identifier) @receiver
             (pointer_type (type_identifier) @receiver)
             (generic_type type: (type_identifier) @receiver)
             (pointer_type (generic_type type: (type_identifier) @receiver))]))
  name: (field_identifier) @name) @definition.method
(type_declaration
  (type_spec name: (type_identifier) @name type: (struct_type) @body)) @definition.struct
(type_declaration
  (type_spec name: (type_identifier) @name type: (interface_type) @body)) @definition.interface
(type_declaration
  (type_spec name: (type_identifier) @name
    type: [(type_identifier) (qualified_type) (function_type) (map_type) (slice_type)
           (channel_type) (pointer_type) (generic_type) (array_type)])) @definition.type
