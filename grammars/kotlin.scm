; Kotlin definitions: classes (also enum classes and interfaces) and objects are containers,
; so their functions become `Type.method`. A companion object's functions belong to its
; class. The grammar has no body fields, so bodies are captured as @body.

(class_declaration name: (identifier) @name) @definition.class
(class_declaration name: (identifier) @name (class_body) @body)
(class_declaration name: (identifier) @name (enum_class_body) @body)
(object_declaration name: (identifier) @name) @definition.object
(function_declaration name: (identifier) @name) @definition.function
(function_declaration name: (identifier) @name (function_body) @body)
(object_declaration name: (identifier) @name (class_body) @body)
