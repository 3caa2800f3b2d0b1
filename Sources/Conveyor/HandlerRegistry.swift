/// The handlers compiled into an executable, by name.
public struct HandlerRegistry: Sendable {
    private var types: [String: any Handler.Type] = [:]

    /// Creates a registry of `handlers`.
    ///
    /// - Throws: ``ConveyorError/Code/configuration`` when two handlers share a name.
    public init(_ handlers: [any Handler.Type]) throws {
        for handler in handlers {
            guard self.types[handler.name] == nil else {
                throw ConveyorError(.configuration, "handler name '\(handler.name)' is registered twice")
            }
            self.types[handler.name] = handler
        }
    }

    /// The registered names, sorted.
    public var names: [String] { self.types.keys.sorted() }

    /// A new instance of the handler registered as `name`.
    ///
    /// - Throws: ``ConveyorError/Code/unknownHandler`` listing the registered names.
    public func make(_ name: String) throws -> any Handler {
        try self.type(named: name).init()
    }

    /// The handler type registered as `name`.
    ///
    /// - Throws: ``ConveyorError/Code/unknownHandler`` listing the registered names.
    public func type(named name: String) throws -> any Handler.Type {
        guard let type = self.types[name] else {
            throw ConveyorError(
                .unknownHandler,
                "no handler named '\(name)' in this executable; registered: \(self.names.joined(separator: ", "))"
            )
        }
        return type
    }
}
