import ConveyorCLI

/// The `conveyor` executable: everything lives in `ConveyorCLI`.
@main
enum Conveyor {
    static func main() async {
        await ConveyorCommand.main(nil)
    }
}
